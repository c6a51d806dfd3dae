"""Manager users: etc/manager-users.toml, written by `rearm passwd`, read by the daemon.

    [users.admin]
    role = "admin"                       # or "read-only"
    hash = "$argon2id$v=19$m=65536,..."  # argon2id, salted; the password itself is never kept

The file is mode 0600: a hash is not a password, but an offline guess at one needs only the
hash. The daemon reads the file afresh whenever it changes on disk, so `rearm passwd` takes
effect at once, and a session ends when its user's hash changes (a new password) or its user
is removed.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from rearm.paths import Home
from rearm.trust import check as check_trusted
from rearm.validate import ConfigError

ADMIN = "admin"
READ_ONLY = "read-only"
ROLES = (ADMIN, READ_ONLY)
USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
USER_RULE = "1-32 characters of A-Z, a-z, 0-9, _ . and -, starting with a letter or digit"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 takes any length; a bound keeps a login request cheap to refuse

if TYPE_CHECKING:
    import argon2


# argon2 is imported, and the dummy hash made, at the first login or passwd rather than when
# the daemon starts: a daemon whose Manager nobody opens does not carry them (~4 MB, and a
# 64 MiB, 0.2 s hash at every start).
@cache
def _hasher() -> argon2.PasswordHasher:
    """argon2id with the library's defaults (RFC 9106's second choice: t=3, 64 MiB, p=4):
    about 0.1-0.2 s here, slow enough for offline guessing, fast enough for a login."""
    import argon2

    return argon2.PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified when the user does not exist, so that a login takes as long either way and
    the time taken does not tell which user names exist."""
    return _hasher().hash("rearm: no such user")


@dataclass(frozen=True)
class User:
    name: str
    role: str
    hash: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


def users_file(home: Home) -> str:
    return os.path.join(home.etc, "manager-users.toml")


def check_user_name(name: str) -> str:
    if not USER_RE.fullmatch(name):
        raise ConfigError(f"user name '{name}': use {USER_RULE}")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ConfigError(f"the password is too long: use at most {MAX_PASSWORD} characters")
    return password


def load_users(home: Home) -> dict[str, User]:
    """Every user of the file; {} when there is none yet. Raises ConfigError for a bad file."""
    path = users_file(home)
    try:
        # Whoever can change this file can make themselves an admin, who can edit start.sh.
        check_trusted(path, path)
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    table = data.get("users", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: 'users' must be a table of [users.NAME] tables")
    users = {}
    for name, entry in table.items():
        where = f"{path}: users.{name}"
        if not USER_RE.fullmatch(name):
            raise ConfigError(f"{where}: user name: use {USER_RULE}")
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a table with role and hash")
        role, hashed = entry.get("role"), entry.get("hash")
        if role not in ROLES:
            raise ConfigError(f"{where}: role must be one of {', '.join(ROLES)}")
        if not isinstance(hashed, str) or not hashed.startswith("$argon2"):
            raise ConfigError(f"{where}: hash must be an argon2 hash (set it with 'rearm passwd')")
        users[name] = User(name, role, hashed)
    return users


def verify(users: dict[str, User], name: str, password: str) -> User | None:
    """The user when `password` is theirs, else None. CPU-bound (argon2): run it off the loop."""
    user = users.get(name)
    import argon2

    candidate = user.hash if user is not None else _dummy_hash()
    try:
        _hasher().verify(candidate, password[:MAX_PASSWORD])
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return None
    return user


def hash_password(password: str) -> str:
    return _hasher().hash(check_password(password))


def save_user(home: Home, name: str, password: str, role: str | None) -> User:
    """Set `name`'s password (and role; None keeps the current one, admin for a new user)."""
    from rearm.config import write_atomic

    check_user_name(name)
    users = load_users(home)
    current = users.get(name)
    if role is None:
        role = current.role if current is not None else ADMIN
    if role not in ROLES:
        raise ConfigError(f"role '{role}': must be one of {', '.join(ROLES)}")
    users[name] = User(name, role, hash_password(password))
    write_atomic(users_file(home), _render(users), 0o600)
    return users[name]


def delete_user(home: Home, name: str) -> None:
    from rearm.config import write_atomic

    users = load_users(home)
    if name not in users:
        raise ConfigError(f"no Manager user named '{name}'")
    del users[name]
    write_atomic(users_file(home), _render(users), 0o600)


def _render(users: dict[str, User]) -> str:
    # Names match USER_RE and hashes are argon2's PHC strings ($, letters, digits, + / = ,):
    # nothing in them needs quoting beyond plain TOML strings.
    lines = [
        "# rearm Manager users, written by 'rearm passwd' (argon2id hashes; keep this file 0600).",
        "# Roles: admin (may change things) or read-only (may only look).",
    ]
    for user in sorted(users.values(), key=lambda u: u.name):
        lines += ["", f'[users."{user.name}"]', f'role = "{user.role}"', f'hash = "{user.hash}"']
    return "\n".join(lines) + "\n"


class UserDirectory:
    """The users file as the daemon sees it: re-read whenever the file on disk changes."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self._stamp: tuple[int, ...] | None = None
        self._users: dict[str, User] = {}
        self.problem: str | None = None  # why the file cannot be used, shown on the login page

    def users(self) -> dict[str, User]:
        try:
            st = os.stat(users_file(self.home))
            # ctime as well: a chmod or chown may make the file untrusted (rearm.trust).
            stamp: tuple[int, ...] | None = (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._users = load_users(self.home)
                self.problem = None
            except ConfigError as e:
                # A broken file locks everyone out rather than guessing who may do what.
                self._users = {}
                self.problem = str(e)
        return self._users

    def get(self, name: str) -> User | None:
        return self.users().get(name)
