"""`rearm passwd [USER] [--read-only|--admin] [--password-stdin] [--delete]` (SPEC §8).

Sets a Manager user's password in etc/manager-users.toml (argon2id, mode 0600). USER defaults
to admin. A new user is an admin unless --read-only; an existing user keeps their role unless
--admin or --read-only says otherwise. The password is typed twice at a terminal, or read from
the first line of standard input with --password-stdin (for scripts: never on the command line,
where other users could see it in ps). A running daemon takes the change at once, and the
user's open sessions end.

`python -m rearm.cli.passwd_cmd [--home DIR] passwd ...` runs it on its own.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from rearm.paths import Home
from rearm.validate import ConfigError


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            raise ConfigError("no password on standard input (--password-stdin reads one line)")
        return password
    if not sys.stdin.isatty():
        raise ConfigError(
            "standard input is not a terminal: give --password-stdin to read the password from it"
        )
    first = getpass.getpass(f"New Manager password for {args.user}: ")
    second = getpass.getpass("Type it again: ")
    if first != second:
        raise ConfigError("the two passwords differ: nothing was changed")
    return first


def _manager_url(home: Home) -> str | None:
    """Where the running daemon serves the Manager, or None (not running, or not served)."""
    from rearm.api.client import ApiFailure, DaemonNotRunning, call

    try:
        status = call(home.socket, "status")
    except (DaemonNotRunning, ApiFailure, OSError):
        return None
    url = status.get("cluster", {}).get("manager_url") if isinstance(status, dict) else None
    return url if isinstance(url, str) else None


def cmd_passwd(args: argparse.Namespace) -> int:
    from rearm.web import users

    home = Home.from_env(args.home)
    users.check_user_name(args.user)
    if args.delete:
        users.delete_user(home, args.user)
        print(f"Manager user {args.user} removed; their sessions have ended")
        return 0
    role = users.READ_ONLY if args.read_only else users.ADMIN if args.admin else None
    password = users.check_password(_read_password(args))
    try:
        user = users.save_user(home, args.user, password, role)
    except OSError as e:
        raise ConfigError(f"{users.users_file(home)}: cannot write: {e.strerror}") from None
    print(f"password set for Manager user {user.name} ({user.role})")
    url = _manager_url(home)
    if url is not None:
        print(f"the Manager is at {url}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `passwd` to the `rearm` command's subparsers."""
    p = subparsers.add_parser(
        "passwd",
        help="set a Manager (web UI) user's password",
    )
    p.add_argument("user", nargs="?", default="admin", metavar="USER", help="default: admin")
    role = p.add_mutually_exclusive_group()
    role.add_argument(
        "--read-only", action="store_true", help="the user may look but not change anything"
    )
    role.add_argument("--admin", action="store_true", help="the user may change things")
    role.add_argument("--delete", action="store_true", help="remove the user")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead of a prompt",
    )
    p.set_defaults(func=cmd_passwd)
