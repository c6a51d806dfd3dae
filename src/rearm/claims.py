"""What a watch holds on the machine, so that one service is never watched twice (SPEC §4).

A second `armload` of a service that a live watch already holds would start a second copy: its
readiness check is answered by the first copy, the copy dies on the busy port or lock file, its
faults count, and the final action fires for a service that runs fine. So each watch of a
service *claims* what identifies it -- the definition's name, the systemd unit, the pid file --
and an armload whose claims meet a live watch's is refused (or, with /A, changes nothing).

Pure: the daemon hands in the claims it computed and the live watches' claims.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

Claims = frozenset[str]


def claims_of(service: str | None, pidfile: str | None = None, unit: str | None = None) -> Claims:
    """The claims of a watch of service `service` (None: an application, which claims nothing),
    started from a definition with `pidfile`, or run by systemd as `unit`."""
    if service is None:
        return frozenset()
    out = {f"service {service.lower()}"}
    if pidfile is not None:
        out.add(f"pid file {os.path.normpath(pidfile)}")
    if unit is not None:
        out.add(f"unit {unit}")
    return frozenset(out)


@dataclass(frozen=True)
class Holder:
    """The live watch that holds what an armload asked for."""

    watch_id: str
    group: str | None
    claim: str  # e.g. "service tel", "pid file /run/tel.pid"
    state: str

    def where(self) -> str:
        return f"group {self.group}" if self.group else "no group"


def holder(wanted: Claims, live: Iterable[tuple[str, str | None, str, Claims]]) -> Holder | None:
    """The first live watch (watch ID, group, state, claims) that holds any of `wanted`."""
    if not wanted:
        return None
    for watch_id, group, state, held in live:
        common = wanted & held
        if common:
            return Holder(watch_id, group, min(common), state)
    return None


def refusal(new_watch: str, service: str, h: Holder) -> str:
    """The one line that refuses a second watch of a service (without /A)."""
    return (
        f"{h.claim} is already watched by {h.watch_id} ({h.where()}, {h.state}): a second "
        f"watch {new_watch} would start a second copy of {service}. Use the watch "
        f"{h.watch_id} (armkill {h.watch_id} first to watch it under another ID)"
    )


def already_watched(service: str, h: Holder) -> str:
    """What armload /A says when the service is already watched: nothing is changed."""
    return f"{h.claim} is already watched by {h.watch_id} ({h.where()}, {h.state}): nothing changed"
