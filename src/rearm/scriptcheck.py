"""Does a group script parse? The shell's own `-n` (read, do not run) says, as visudo -c does
for sudoers: `rearm group edit` checks after the editor closes, `rearm doctor` checks them all.

Only scripts for a POSIX-family shell (sh, dash, bash, ksh, zsh; directly or through
/usr/bin/env) are checked; another interpreter's script is left alone.
"""

from __future__ import annotations

import os
import shlex
import subprocess

SHELLS = frozenset({"sh", "dash", "bash", "ksh", "mksh", "zsh", "busybox"})
TIMEOUT = 10.0


def checker(text: str) -> list[str] | None:
    """The command that parses a script with `text`'s interpreter without running it, or None
    when its interpreter is not a shell (or there is no #! line: run by /bin/sh, as execve
    fails and the daemon says so)."""
    if not text.startswith("#!"):
        return None
    words = shlex.split(text[2:].splitlines()[0]) if text[2:].strip() else []
    if words and os.path.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
    if not words or os.path.basename(words[0]) not in SHELLS:
        return None
    if os.path.basename(words[0]) == "busybox":
        return [words[0], "sh", "-n"]
    return [words[0], "-n"]


def syntax_problem(path: str) -> str | None:
    """Why the script at `path` does not parse (the shell's own words), or None when it does
    or cannot be checked here."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(4096)
    except OSError as e:
        return f"cannot be read: {e.strerror}"
    command = checker(head)
    if command is None:
        return None
    try:
        done = subprocess.run(
            [*command, path],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError:
        return f"its interpreter {command[0]} is not installed"
    except subprocess.TimeoutExpired:
        return f"{command[0]} -n did not finish within {TIMEOUT:g} s"
    if done.returncode == 0:
        return None
    said = (done.stderr or done.stdout).strip()
    return said or f"{' '.join(command)} exited with status {done.returncode}"
