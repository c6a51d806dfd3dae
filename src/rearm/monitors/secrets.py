"""Passwords of the protocol monitors: read from a file at each probe, never kept in the
configuration (group.toml and service files are readable by all; the password file need not
be). Only the first line counts, so a trailing newline from `echo` does no harm."""

from __future__ import annotations


class SecretError(Exception):
    """The password file cannot be read: a configuration problem, not the service's."""


def read_secret(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n")
    except OSError as e:
        raise SecretError(f"cannot read the password file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise SecretError(f"the password file {path} is not UTF-8 text") from None
