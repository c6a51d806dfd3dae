"""Fast launchers of armload, armkill and armem for the group scripts.

A console script made by pip starts Python with `site` (which reads every .pth file of the
environment) and imports `re` before it calls rearm: ~15 ms more than rearm's own work, paid
by each of the hundreds of armload lines a start script may hold. At start the daemon writes
its own launchers to run/bin: `python -I -S` (no site, no user environment) with the folders
rearm and its dependencies live in added by hand. Group scripts find them first on PATH; an
operator may put run/bin on PATH too (docs/performance.md).
"""

from __future__ import annotations

import logging
import os
import sys
import sysconfig

from rearm.config import write_atomic
from rearm.trust import UntrustedFile, check

log = logging.getLogger("rearm.launchers")

# command name -> the function of rearm.cli.arm that runs it
COMMANDS = {"armload": "armload_main", "armkill": "armkill_main", "armem": "armem_main"}
# Linux reads at most this much of a #! line (BINPRM_BUF_SIZE); a longer one is cut.
SHEBANG_MAX = 255


def import_roots() -> list[str]:
    """Where `import rearm` and its dependencies resolve in this interpreter, rearm's first."""
    import rearm

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(rearm.__file__)))
    roots = [package_parent]
    for key in ("purelib", "platlib"):
        folder = sysconfig.get_paths()[key]
        if folder not in roots:
            roots.append(folder)
    return roots


def launcher_text(python: str, roots: list[str], entry: str) -> str | None:
    """The launcher's source, or None when `python` cannot be named on a #! line."""
    shebang = f"#!{python} -IS"
    if len(shebang) > SHEBANG_MAX or any(char.isspace() for char in python):
        return None
    return (
        f"{shebang}\n"
        "# Written by the rearm daemon at start; see rearm/daemon/launchers.py.\n"
        "import sys\n"
        f"sys.path[:0] = {roots!r}\n"
        f"from rearm.cli.arm import {entry}\n"
        f"sys.exit({entry}())\n"
    )


def write_launchers(folder: str) -> bool:
    """Write the launchers into `folder`. False (logged) when they cannot be used here."""
    python = sys.executable
    roots = import_roots()
    try:
        for command, entry in COMMANDS.items():
            text = launcher_text(python, roots, entry)
            if text is None:
                log.warning("no fast launchers: %s cannot be named on a #! line", python)
                return False
            path = os.path.join(folder, command)
            write_atomic(path, text, mode=0o755)
            # First on the PATH of scripts run as root: a folder others could write would let
            # them replace armload (the same rule as for the scripts themselves, rearm.trust).
            check(path, f"the launcher {command}")
    except OSError as e:
        log.warning("no fast launchers in %s: %s", folder, e.strerror)
        return False
    except UntrustedFile as e:
        log.warning("no fast launchers: %s", e)
        return False
    return True
