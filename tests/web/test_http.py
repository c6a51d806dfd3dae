"""The Manager over plain HTTP, against a real daemon: what is refused, to whom, and what the
event log says about who did what. No browser: each request carries exactly what the test
gives it."""

from __future__ import annotations

import os
import signal
import stat

from tests.integration.harness import wait_for

from .manager import ADMIN, GROUP, VIEWER, WATCH, Client, Manager, json_of, passwd, wait_event

PAGES = [
    "/",
    f"/groups/{GROUP}",
    f"/groups/{GROUP}/scripts/start",
    "/events",
    "/cluster",
    "/licenses",
]


def test_without_a_session_pages_lead_to_the_login_and_changes_are_refused(
    manager: Manager,
) -> None:
    c = manager.client()
    for path in PAGES:
        r = c.get(path)
        assert r.status == 303, path
        location = r.header("Location") or ""
        assert location.startswith("/login"), (path, location)
    assert c.get("/groups/WEBGRP").header("Location") == "/login?next=/groups/WEBGRP"
    assert c.get("/live?view=tree").status == 401
    assert c.get("/api/status").status == 401
    # Changes: refused outright, even from our own origin.
    for path in (f"/groups/{GROUP}/stop", f"/groups/{GROUP}/start", "/cluster", "/logout"):
        assert c.post(path, {"confirm": "yes"}).status == 403, path
    assert manager.group_state() == "online"
    # Public: the login page, the static files, /metrics (for scrapers, see metrics.py).
    assert c.get("/login").status == 200
    assert c.get("/static/manager.css").status == 200
    assert c.get("/static/manager.js").status == 200
    metrics = c.get("/metrics")
    assert metrics.status == 200 and "rearm_watch_state" in metrics.body


def test_pages_and_the_session_cookie_carry_the_security_headers(manager: Manager) -> None:
    c = manager.client()
    login = c.login()
    cookie = login.header("Set-Cookie") or ""
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    token = c.cookies["rearm_session"]
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    for path in PAGES:
        r = c.get(path)
        assert r.status == 200, path
        csp = r.header("Content-Security-Policy") or ""
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert r.header("X-Frame-Options") == "DENY"
        assert r.header("X-Content-Type-Options") == "nosniff"
        assert r.header("Cache-Control") == "no-store"
        assert "<script>" not in r.body and " on" + "click=" not in r.body  # no inline script
    # A name this server does not answer to (DNS rebinding) is refused.
    r = c.request("GET", "/", headers={"Host": f"attacker.example:{manager.port}"})
    assert r.status == 421


def test_a_change_without_the_csrf_token_or_from_another_origin_is_refused(
    manager: Manager,
) -> None:
    c = manager.client()
    c.login()
    token = c.csrf()
    stop = f"/groups/{GROUP}/stop"
    refusals = [
        c.post(stop, {"confirm": "yes"}),  # no token
        c.post(stop, {"confirm": "yes", "csrf": "x" + token[1:]}),  # a wrong token
        c.post(stop, {"confirm": "yes", "csrf": token}, origin="http://evil.example"),
        c.post(stop, {"confirm": "yes", "csrf": token}, origin=None),  # no Origin nor Referer
    ]
    assert [r.status for r in refusals] == [403, 403, 403, 403]
    assert manager.group_state() == "online"
    assert manager.events("manager_group_stop") == []
    # The same request done right: the Referer stands in for a missing Origin.
    ok = c.request(
        "POST",
        stop,
        {"confirm": "yes", "csrf": token},
        {"Referer": f"{c.origin}/groups/{GROUP}"},
    )
    assert ok.status == 303
    wait_for("the group offline", lambda: manager.group_state() == "offline")


def test_a_read_only_user_sees_everything_and_changes_nothing(manager: Manager) -> None:
    c = manager.client()
    c.login(VIEWER)
    for path in PAGES:
        r = c.get(path)
        assert r.status == 200, path
        assert "Stop group" not in r.body and "Inject fault" not in r.body
    assert json_of(c.get("/api/status"))["groups"][0]["state"] == "online"
    before = manager.script().read_text()
    for path, fields in (
        (f"/groups/{GROUP}/stop", {"confirm": "yes"}),
        (f"/groups/{GROUP}/watches/{WATCH}/drill", {"confirm": "yes"}),
        (f"/groups/{GROUP}/scripts/start", {"text": "#!/bin/sh\nexit 0\n", "base": ""}),
        ("/cluster", {"final_action": "none"}),
        ("/groups", {"name": "NEWGRP"}),
    ):
        r = c.action(path, fields)
        assert r.status == 403, path
        assert "may look but not change" in r.body
    assert manager.group_state() == "online"
    assert manager.script().read_text() == before
    assert not (manager.home / "etc" / "groups" / "NEWGRP").exists()
    # Logging out is the one thing a read-only user may post.
    assert c.action("/logout").status == 303
    assert c.get("/").status == 303


def test_logins_are_rate_limited_per_client_address(manager: Manager) -> None:
    # From 127.0.0.2, so that the limit it earns does not touch the test's other client.
    guesser = manager.client("127.0.0.2")
    for attempt in range(5):
        r = guesser.post("/login", {"user": "admin", "password": f"guess-{attempt}"})
        assert r.status == 401, attempt
    limited = guesser.post("/login", {"user": "admin", "password": ADMIN[1]})
    assert limited.status == 429
    assert 1 <= int(limited.header("Retry-After") or "0") <= 60
    assert "rearm_session" not in guesser.cookies
    failed = manager.events("manager_login_failed")
    assert len(failed) == 5 and failed[0]["data"]["client"] == "127.0.0.2"
    # Another address is not affected.
    manager.client().login()


def test_every_change_is_an_event_naming_the_user(manager: Manager) -> None:
    c = manager.client()
    c.login()
    login = wait_event(manager, "manager_login")
    assert login["data"]["user"] == "admin" and "admin" in login["message"]
    r = c.action(f"/groups/{GROUP}/stop")
    assert r.status == 200 and "Stop group WEBGRP?" in r.body  # asks first
    assert manager.group_state() == "online"
    assert c.action(f"/groups/{GROUP}/stop", {"confirm": "yes"}).status == 303
    wait_for("the group offline", lambda: manager.group_state() == "offline")
    stop = wait_event(manager, "manager_group_stop")
    assert stop["data"]["user"] == "admin" and stop["group"] == GROUP
    assert "Manager user admin" in stop["message"]
    assert any("Manager user admin" in e["message"] for e in manager.events("group_stop"))
    r = c.action("/cluster", {"return_mode": "manual"})
    assert r.status == 303
    change = wait_event(manager, "manager_cluster_set")
    assert change["data"] == {
        "user": "admin",
        "client": "127.0.0.1",
        "changes": {"return_mode": "manual"},
    }
    assert manager.cluster.status()["cluster"]["return_mode"] == "manual"


def test_scripts_change_only_while_the_group_is_offline(manager: Manager) -> None:
    c = manager.client()
    c.login()
    path = f"/groups/{GROUP}/scripts/start"
    page = c.get(path)
    assert "Stop the group first" in page.body and "readonly" in page.body
    before = manager.script().read_text()
    base = _field(page.body, "base")
    new = "#!/bin/sh\r\n# edited over HTTP\r\nexit 0"
    r = c.action(path, {"text": new, "base": base})
    assert r.status == 409 and "stop it first" in r.body
    assert manager.script().read_text() == before
    c.action(f"/groups/{GROUP}/stop", {"confirm": "yes"})
    wait_for("the group offline", lambda: manager.group_state() == "offline")
    assert c.action(path, {"text": new, "base": base}).status == 303
    # Saved with Unix line ends and a final newline, executable, and recorded.
    assert manager.script().read_text() == "#!/bin/sh\n# edited over HTTP\nexit 0\n"
    assert stat.S_IMODE(os.stat(manager.script()).st_mode) == 0o755
    edit = wait_event(manager, "manager_script_edit")
    assert edit["data"]["user"] == "admin" and edit["data"]["script"] == "start.sh"
    # A save based on an older text (someone changed the file meanwhile) is refused.
    stale = c.action(path, {"text": "#!/bin/sh\nexit 1\n", "base": base})
    assert stale.status == 409 and "changed by someone else" in stale.body
    # And something that cannot run is not saved.
    no_shebang = c.action(path, {"text": "exit 0\n", "base": _field(c.get(path).body, "base")})
    assert no_shebang.status == 400


def test_a_template_is_imported_only_into_an_offline_group(manager: Manager) -> None:
    c = manager.client()
    c.login()
    fields = {
        "template": "generic",
        "confirm": "yes",
        "var_command": "/bin/sleep 999",
        "var_port": "18999",
    }
    online = c.action(f"/groups/{GROUP}/template", fields)
    assert online.status == 303
    assert "stop it first" in c.get(f"/groups/{GROUP}/scripts/start").body
    c.action(f"/groups/{GROUP}/stop", {"confirm": "yes"})
    wait_for("the group offline", lambda: manager.group_state() == "offline")
    page = c.get(f"/groups/{GROUP}/scripts/start?template=generic")
    assert 'name="var_command"' in page.body
    r = c.action(f"/groups/{GROUP}/template", _template_fields(page.body, fields))
    assert r.status == 303, r.body[:500]
    assert "rearm template 'generic'" in manager.script().read_text()
    assert (manager.script().parent / "start.sh.bak").exists()
    event = wait_event(manager, "manager_template_import")
    assert event["data"]["user"] == "admin" and event["data"]["template"] == "generic"


def test_pages_escape_what_they_show(manager: Manager) -> None:
    c = manager.client()
    c.login()
    hostile = '<img src=x onerror="alert(1)">'
    r = c.action("/groups", {"name": "XSSGRP", "description": hostile, "auto_start": "off"})
    assert r.status == 303 and r.header("Location") == "/groups/XSSGRP"
    page = c.get("/groups/XSSGRP").body
    assert hostile not in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page
    assert wait_event(manager, "manager_group_create")["data"]["user"] == "admin"


def test_a_new_password_ends_the_sessions_opened_with_the_old_one(manager: Manager) -> None:
    c = manager.client()
    c.login()
    assert c.get("/").status == 200
    r = passwd(manager.home, "admin", "another-password-2")
    assert r.returncode == 0, r.stderr
    assert c.get("/").status == 303
    assert c.post("/login", {"user": "admin", "password": ADMIN[1]}).status == 401
    c.login(("admin", "another-password-2"))


def test_the_live_stream_pushes_the_restart_of_a_killed_watch(manager: Manager) -> None:
    c = manager.client()
    c.login()
    watch = manager.cluster.watch(WATCH)
    assert watch is not None
    with _stream(c, f"/live?view=group&group={GROUP}") as events:
        first = _next_fragment(events, "watches")
        assert f">{watch['pid']}<" in first
        os.kill(watch["pid"], signal.SIGKILL)
        restarted = manager.cluster.wait_running(WATCH, other_than=watch["pid"])
        while f">{restarted['pid']}<" not in (html := _next_fragment(events, "watches")):
            pass
        assert 'data-field="restarts">1<' in html
    assert manager.cluster.status()["cluster"]["manager_url"] == f"{manager.url}/"


# --- helpers ----------------------------------------------------------------------------------


def _field(body: str, name: str) -> str:
    import re

    match = re.search(rf'name="{name}" value="([^"]*)"', body)
    assert match, f"no field {name}"
    return match.group(1)


def _template_fields(body: str, given: dict[str, str]) -> dict[str, str]:
    """The template form's fields as the page fills them in, with `given` on top."""
    import html
    import re

    found = {
        m.group(1): html.unescape(m.group(2))
        for m in re.finditer(r'name="(var_[a-z_]+)" value="([^"]*)"', body)
    }
    return {**found, **given}


class _stream:
    """GET a server-sent events stream; iterate (event, data) pairs."""

    def __init__(self, client: Client, path: str) -> None:
        import http.client

        self.conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=20)
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        self.conn.request("GET", path, headers={"Cookie": cookie, "Accept": "text/event-stream"})
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        assert self.response.headers["Content-Type"].startswith("text/event-stream")

    def __enter__(self) -> _stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

    def __iter__(self) -> _stream:
        return self

    def __next__(self) -> tuple[str, str]:
        event, data = "message", ""
        while True:
            line = self.response.readline().decode()
            if line == "":
                raise StopIteration
            line = line.rstrip("\n")
            if line == "" and data:
                return event, data
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data = line[len("data: ") :]


def _next_fragment(events: _stream, fragment_id: str) -> str:
    import json

    for event, data in events:
        if event == "fragment":
            fragment = json.loads(data)
            if fragment["id"] == fragment_id:
                return str(fragment["html"])
    raise AssertionError("the stream ended")


def test_the_daemon_stops_promptly_with_a_live_stream_open(manager: Manager) -> None:
    import time

    c = manager.client()
    c.login()
    with _stream(c, "/live?view=tree") as events:
        _next_fragment(events, "tree")
        started = time.monotonic()
        manager.cluster.stop_daemon(stop_groups=True)
        assert time.monotonic() - started < 10
        for _ in events:  # the stream ends with the daemon (a hang would time out the read)
            pass


def test_a_license_is_registered_from_the_licenses_page(manager: Manager) -> None:
    import datetime as dt

    from rearm import license as licenses

    # A vendor keypair of the test's own: its public half is trusted through etc/license-keys.
    private_path, _, _ = licenses.write_keypair(str(manager.home / "etc" / "license-keys"))
    key = licenses.issue(
        licenses.load_private_key(private_path), serial="AB123456", issued=dt.date.today()
    )
    c = manager.client()
    c.login()
    bad = c.action("/licenses", {"serial": "AB123456", "key": key[:-8] + "AAAAAAAA"})
    assert bad.status == 303
    assert "The license was not registered" in c.get("/licenses").body
    assert c.action("/licenses", {"serial": "AB123456", "key": key}).status == 303
    page = c.get("/licenses").body
    assert "The license was registered." in page and "AB123456" in page and "valid" in page
    event = wait_event(manager, "manager_license_register")
    assert event["data"]["user"] == "admin"
