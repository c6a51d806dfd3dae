"""`rearm bundle`: one tar.gz for a support case (the original's log collection).

What goes in is chosen, not what stays out: the configuration rearm reads (cluster.toml, each
group's group.toml and scripts, the service definitions) with every secret masked, the event
log, the status JSON, the end of each watch and group log, and versions. Never: the Manager's
user file (password hashes; only the user names and roles are listed), license keys and vendor
keys (only their names), secret files that `*_file` keys name, the state database itself.

Masking: the value of every key whose name says secret (password, secret, token, key,
community, auth, priv, hash, credential...) becomes "***", in TOML (also inside inline tables,
e.g. environment = { PGPASSWORD = ... }) and in scripts (NAME=value, --password=value). Then
each masked file is checked against the secret values its parsed original holds: should one be
left (a multi-line string, say), the whole file is left out and the manifest says so.

Masking is pure (text in, text out); `collect` reads the home and writes the archive.
"""

from __future__ import annotations

import io
import json
import os
import platform
import re
import sqlite3
import tarfile
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rearm.paths import Home

MASK = "***"
SECRET_NAME = re.compile(
    r"pass|secret|token|key|community|auth|priv|hash|credential|cookie|session", re.IGNORECASE
)
# A TOML `key = value` pair, anywhere (a line, or inside an inline table).
_TOML_PAIR = re.compile(
    r"""(?P<key>(?:[A-Za-z0-9_.-]+|"[^"\n]*"|'[^'\n]*'))(?P<eq>\s*=\s*)"""
    r"""(?P<value>\"\"\"|'''|"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|\[[^\]\n]*\]|[^,}\s#]+)"""
)
# Shell: NAME=value (export, env, command prefixes) and --option=value / --option value.
_SHELL_ASSIGN = re.compile(
    r"(?P<name>\b[A-Za-z_][A-Za-z0-9_]*)=(?P<value>\"[^\"\n]*\"|'[^'\n]*'|\S+)"
)
_SHELL_OPTION = re.compile(
    r"(?P<name>--?[A-Za-z][A-Za-z0-9_-]*)(?P<sep>[ =])(?P<value>\"[^\"\n]*\"|'[^'\n]*'|\S+)"
)
EVENTS = 2000  # the newest events
LOG_LINES = 300  # the end of each watch and group log
LOG_BYTES = 256 * 1024


def _secret_key(key: str) -> bool:
    name = key.strip("\"'")
    return bool(SECRET_NAME.search(name)) and not name.endswith("_file")


def mask_toml(text: str) -> str:
    """`text` with the value of every secret-named key replaced by "***"."""

    def one(m: re.Match[str]) -> str:
        if not _secret_key(m.group("key")):
            return m.group(0)
        return f'{m.group("key")}{m.group("eq")}"{MASK}"'

    return _TOML_PAIR.sub(one, text)


def mask_script(text: str) -> str:
    """A shell script with secret-named assignments and options masked."""

    def assign(m: re.Match[str]) -> str:
        return f"{m.group('name')}={MASK}" if _secret_key(m.group("name")) else m.group(0)

    def option(m: re.Match[str]) -> str:
        if not _secret_key(m.group("name").lstrip("-")):
            return m.group(0)
        return f"{m.group('name')}{m.group('sep')}{MASK}"

    return _SHELL_OPTION.sub(option, _SHELL_ASSIGN.sub(assign, text))


def secret_values(data: Any, secret: bool = False) -> set[str]:
    """Every string held under a secret-named key of parsed TOML (at any depth)."""
    found: set[str] = set()
    if isinstance(data, dict):
        for k, v in data.items():
            found |= secret_values(v, secret or _secret_key(str(k)))
    elif isinstance(data, list):
        for v in data:
            found |= secret_values(v, secret)
    elif secret and isinstance(data, str | int | float) and str(data):
        found.add(str(data))
    return found


def masked_toml_or_none(text: str) -> str | None:
    """The masked text, or None when a secret would still show (then leave the file out)."""
    masked = mask_toml(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        data = {}
    if any(len(v) >= 3 and v in masked for v in secret_values(data)):
        return None
    return masked


# --- collecting -------------------------------------------------------------------------------
@dataclass
class Bundle:
    """The archive's members (path -> bytes) and its manifest."""

    name: str
    files: dict[str, bytes] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)

    def add(self, path: str, data: str | bytes) -> None:
        self.files[path] = data.encode() if isinstance(data, str) else data

    def manifest(self) -> str:
        lines = [f"rearm support bundle {self.name}", "", "included:"]
        lines += [f"  {p}" for p in sorted(self.files)]
        lines += ["", "left out (secrets; names only):"]
        lines += [f"  {p}" for p in self.left_out] or ["  (nothing)"]
        return "\n".join(lines) + "\n"

    def write(self, path: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w:gz") as tar:
            members = {**self.files, "MANIFEST.txt": self.manifest().encode()}
            for rel, data in sorted(members.items()):
                info = tarfile.TarInfo(f"{self.name}/{rel}")
                info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
                tar.addfile(info, io.BytesIO(data))


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _rel(home: Home, path: str) -> str:
    for base, shown in ((home.etc, "etc"), (home.var, "var")):
        if path == base or path.startswith(base + os.sep):
            return os.path.join(shown, os.path.relpath(path, base))
    return path.lstrip("/")


def _add_toml(b: Bundle, home: Home, path: str) -> None:
    text = _read(path)
    if text is None:
        return
    masked = masked_toml_or_none(text)
    if masked is None:
        b.left_out.append(f"{_rel(home, path)} (a secret could not be masked)")
        return
    b.add(_rel(home, path), masked)


def _configuration(b: Bundle, home: Home) -> None:
    from rearm.license import license_keys_dir, licenses_dir
    from rearm.web.users import users_file

    _add_toml(b, home, home.cluster_file)
    if os.path.isdir(home.groups_dir):
        for group in sorted(os.listdir(home.groups_dir)):
            folder = os.path.join(home.groups_dir, group)
            if not os.path.isdir(folder):
                continue
            _add_toml(b, home, os.path.join(folder, "group.toml"))
            for script in ("start.sh", "stop.sh"):
                text = _read(os.path.join(folder, script))
                if text is not None:
                    b.add(_rel(home, os.path.join(folder, script)), mask_script(text))
    if os.path.isdir(home.services_dir):
        for name in sorted(os.listdir(home.services_dir)):
            if name.endswith(".toml"):
                _add_toml(b, home, os.path.join(home.services_dir, name))
    users = _read(users_file(home))
    if users is not None:
        try:
            table = tomllib.loads(users).get("users", {})
            listed = [f"{u}: {v.get('role', '?')}" for u, v in sorted(table.items())]
        except (tomllib.TOMLDecodeError, AttributeError):
            listed = ["(unreadable)"]
        b.add(
            "etc/manager-users.txt",
            "Manager users and roles (hashes left out):\n" + "\n".join(listed) + "\n",
        )
        b.left_out.append(f"{_rel(home, users_file(home))} (password hashes)")
    for folder in (licenses_dir(home), license_keys_dir(home)):
        if os.path.isdir(folder):
            b.left_out += [
                f"{_rel(home, os.path.join(folder, n))}" for n in sorted(os.listdir(folder))
            ]
    shown = {os.path.join("etc", p.split("/", 1)[1]) for p in b.files if p.startswith("etc/")}
    for dirpath, _, names in os.walk(home.etc):
        for n in names:
            rel = _rel(home, os.path.join(dirpath, n))
            if rel not in shown and not any(entry.startswith(rel) for entry in b.left_out):
                b.left_out.append(rel)


def _events(b: Bundle, home: Home, status: dict[str, Any] | None) -> None:
    from rearm.store import open_read_only
    from rearm.web import eventlog

    try:
        db = open_read_only(home.state_db)
    except (FileNotFoundError, sqlite3.Error):
        b.add("events.jsonl", "")
        return
    try:
        rows = eventlog.query(db, eventlog.EventFilter(limit=EVENTS))
        b.add("events.jsonl", "".join(json.dumps(e.as_json()) + "\n" for e in reversed(rows)))
    except sqlite3.Error as e:
        b.add("events.jsonl", json.dumps({"error": str(e)}) + "\n")
    finally:
        db.close()


def _logs(b: Bundle, home: Home) -> None:
    from rearm.logtail import tail

    for folder in (home.watch_logs, home.group_logs):
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                lines = tail(path, lines=LOG_LINES, max_bytes=LOG_BYTES)
                b.add(_rel(home, path), "\n".join(lines) + "\n")


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    release = ""
    for line in (_read("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            release = line.split("=", 1)[1].strip('"')
    lines = [
        f"rearm {of('rearm')}",
        f"python {platform.python_version()} ({platform.python_implementation()})",
        f"kernel {platform.release()} {platform.machine()}",
        f"os {release or 'unknown'}",
        f"sqlite {sqlite3.sqlite_version}",
    ]
    lines += [f"{p} {of(p)}" for p in ("aiohttp", "pysnmp", "dbus-fast", "jinja2", "tomlkit")]
    return "\n".join(lines) + "\n"


def collect(
    home: Home,
    status: Callable[[], dict[str, Any] | None],
    name: str,
    more: Iterable[tuple[str, str]] = (),
) -> Bundle:
    """Everything a support case needs from `home`; `status()` is the daemon's status, or None
    when no daemon runs."""
    b = Bundle(name)
    _configuration(b, home)
    current = status()
    b.add(
        "status.json",
        json.dumps(current, indent=2) + "\n"
        if current is not None
        else json.dumps({"daemon": "not running"}) + "\n",
    )
    _events(b, home, current)
    _logs(b, home)
    b.add("versions.txt", versions())
    for path, text in more:
        b.add(path, text)
    return b
