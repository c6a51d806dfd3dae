"""Which group uses which service definition, and which definition a live watch runs.

A definition (`etc/services/NAME.toml`) belongs to no group on disk: groups use it through the
`armload ... /S NAME` lines of their start scripts and their declarative watches. Replacing or
deleting one must say who uses it (`rearm group template`, `rearm group delete --purge`).

`services_in_script` is pure (script text in, names out); `services_by_group` reads the groups.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from rearm.arm import ArmUsageError, HelpRequested, parse_armload
from rearm.model import ServiceDef
from rearm.paths import Home
from rearm.validate import ConfigError

_ARMLOAD_LINE = re.compile(r"^\s*(?:exec\s+)?armload\s", re.MULTILINE)
_SHELL_ENDS = (";", "&&", "||", "&", "|", ">", "2>", ">>", "2>&1")


def services_in_script(text: str) -> set[str]:
    """The service names of the `armload ... /S NAME` lines of a script (lower case).

    Lines that a shell would need to expand (variables, substitutions) are skipped: the name is
    not known before the script runs.
    """
    found: set[str] = set()
    text = text.replace("\\\n", " ")  # continued lines
    for line in text.splitlines():
        if not _ARMLOAD_LINE.match(line):
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        words = words[words.index("armload") + 1 :]
        for i, word in enumerate(words):
            if word in _SHELL_ENDS or word.startswith((">", "2>")):
                words = words[:i]
                break
        if any("$" in w or "`" in w for w in words):
            continue
        try:
            request = parse_armload(words)
        except (ArmUsageError, HelpRequested):
            continue
        if request.service is not None:
            found.add(request.service.lower())
    return found


def services_by_group(home: Home) -> dict[str, set[str]]:
    """For each group on disk, the services its start script and declared watches name."""
    from rearm.config import group_names, load_group, script_path

    out: dict[str, set[str]] = {}
    for name in group_names(home):
        used: set[str] = set()
        try:
            with open(script_path(home, name, "start"), encoding="utf-8") as f:
                used |= services_in_script(f.read())
        except (OSError, UnicodeDecodeError):
            pass
        with contextlib.suppress(ConfigError):
            used |= {w.service.lower() for w in load_group(home, name).watches if w.service}
        out[name] = used
    return out


def groups_using(by_group: Mapping[str, Iterable[str]], service: str) -> list[str]:
    return sorted(g for g, used in by_group.items() if service.lower() in used)


def only_used_by(by_group: Mapping[str, Iterable[str]], group: str) -> list[str]:
    """The services `group` uses that no other group does."""
    others = {s for g, used in by_group.items() if g != group for s in used}
    return sorted(set(by_group.get(group, ())) - others)


def live_users(status: Mapping[str, Any], home: Home) -> dict[str, str]:
    """Definition file -> "watch ID of group G (state)", for each live watch of a service
    in a status object (`rearm status --json`): the files no command may replace unseen."""
    out: dict[str, str] = {}
    watches = [(w, g["name"]) for g in status.get("groups", []) for w in g["watches"]]
    watches += [(w, None) for w in status.get("watches", [])]
    for w, group in watches:
        ended = w.get("state") in ("stopped", "failed", "escalated")
        if w.get("kind") != "service" or w.get("unit") or ended:
            continue
        where = f"group {group}" if group else "no group"
        out[home.service_file(str(w["target"]).lower())] = (
            f"watch {w['id']} of {where} ({w['state']})"
        )
    return out


def definition_digest(service: ServiceDef) -> str:
    """What a definition says, in a few characters: equal digests, equal definitions."""
    return hashlib.sha256(repr(service).encode()).hexdigest()[:16]


def file_signature(path: str) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of a file, None when it is gone: a cheap "has it changed"."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
