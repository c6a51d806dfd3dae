"""Every event kind the daemon emits is one a sink's `kinds` may name (model.KNOWN_KINDS): a
kind added to the daemon without being added there fails here, not in an operator's config."""

from __future__ import annotations

import re
from pathlib import Path

import rearm
from rearm.alerts.model import DEFAULT_KINDS, KNOWN_KINDS, OWN_KINDS

SRC = Path(rearm.__file__).parent
# emit("kind", ...), Emit("kind", ...) and the groups' _set(..., "kind", ...) transitions.
EMITTED = re.compile(r'\b(?:emit|Emit)\(\s*"([a-z_]+)"|\bG\.[A-Z]+,\s*[^,]+,\s*"([a-z_]+)"')


def test_every_emitted_kind_is_known() -> None:
    emitted: set[str] = set()
    for path in SRC.rglob("*.py"):
        if "alerts" in path.parts:
            continue
        for m in EMITTED.finditer(path.read_text()):
            emitted.add(m.group(1) or m.group(2))
    assert {"fault", "restart", "final_action", "group_error", "daemon_start"} <= emitted
    assert emitted - KNOWN_KINDS == set(), "add these to rearm.alerts.model.KNOWN_KINDS"


def test_defaults_are_known_and_own_kinds_are_apart() -> None:
    assert set(DEFAULT_KINDS) <= KNOWN_KINDS
    assert not OWN_KINDS & KNOWN_KINDS
