"""A rearm cluster serving the Manager, for the web tests, and a small HTTP client for it.

The cluster is the integration harness's (a real daemon in drill mode in a temporary
REARM_HOME) with a free manager port, two Manager users set with `rearm passwd` (an admin and
a read-only viewer), and one group whose start script watches /bin/sleep.

The client speaks HTTP with http.client: no redirect is followed and no header is added
behind the test's back, so each test says exactly what a request carries.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.integration.harness import Cluster, wait_for

ADMIN = ("admin", "admin-password-1")
VIEWER = ("viewer", "viewer-password-1")
GROUP = "WEBGRP"
WATCH = "SLEEPER"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def passwd(home: Path, user: str, password: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """`rearm passwd USER --password-stdin`."""
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "rearm"),
            "--home",
            str(home),
            "passwd",
            user,
            "--password-stdin",
            *flags,
        ],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


@dataclass
class Manager:
    cluster: Cluster
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        return self.cluster.home

    def script(self, which: str = "start") -> Path:
        return self.home / "etc" / "groups" / GROUP / f"{which}.sh"

    def group_state(self) -> str:
        group = self.cluster.group(GROUP)
        assert group is not None
        return str(group["state"])

    def events(self, kind: str) -> list[dict[str, Any]]:
        return self.cluster.events(kind)

    def client(self, source: str = "127.0.0.1") -> Client:
        return Client(self.port, source)


def start_manager(tmp_path: Path) -> Manager:
    cluster = Cluster(tmp_path / "home")
    port = free_port()
    cluster.create(manager_port=str(port))
    for (user, password), flags in ((ADMIN, ()), (VIEWER, ("--read-only",))):
        r = passwd(cluster.home, user, password, *flags)
        assert r.returncode == 0, r.stderr
    cluster.write_group(
        GROUP,
        f"armload {WATCH} /R 9 /H 1 /INT 0 /bin/sleep 1000",
        f"armkill {WATCH}",
        auto_start=True,
    )
    manager = Manager(cluster, port)
    cluster.start_daemon()
    wait_for("the group online", lambda: manager.group_state() == "online")
    return manager


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class Client:
    port: int
    source: str = "127.0.0.1"
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=30, source_address=(self.source, 0)
        )
        try:
            sent = dict(headers or {})
            if self.cookies:
                sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            data = None
            if body is not None:
                data = urlencode(body)
                sent["Content-Type"] = "application/x-www-form-urlencoded"
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            reply = Reply(response.status, response.headers, response.read().decode())
        finally:
            conn.close()
        for value in reply.headers.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(value)
            for name, morsel in jar.items():
                if morsel.value:
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return reply

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(
        self, path: str, fields: dict[str, str] | None = None, *, origin: str | None = "same"
    ) -> Reply:
        """POST a form; `origin` "same" sends our own Origin, None sends none."""
        headers = {}
        if origin is not None:
            headers["Origin"] = self.origin if origin == "same" else origin
        return self.request("POST", path, fields or {}, headers)

    def login(self, user: tuple[str, str] = ADMIN) -> Reply:
        reply = self.post("/login", {"user": user[0], "password": user[1], "next": "/"})
        assert reply.status == 303, (reply.status, reply.body[:300])
        return reply

    def csrf(self, path: str = "/") -> str:
        """The session's CSRF token, as a page carries it."""
        page = self.get(path)
        assert page.status == 200, page.status
        match = re.search(r'name="csrf" value="([^"]+)"', page.body)
        assert match, "no CSRF token on the page"
        return match.group(1)

    def action(self, path: str, fields: dict[str, str] | None = None) -> Reply:
        """POST as the Manager's own forms do: our Origin and the session's token."""
        return self.post(path, {"csrf": self.csrf(), **(fields or {})})


def wait_event(manager: Manager, kind: str, timeout: float = 15) -> dict[str, Any]:
    return wait_for(f"a {kind} event", lambda: (e := manager.events(kind)) and e[-1], timeout)


def json_of(reply: Reply) -> Any:
    return json.loads(reply.body)


def deadline(seconds: float) -> float:
    return time.monotonic() + seconds
