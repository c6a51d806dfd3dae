"""Keeping var/ bounded: old events and faults out of the state database, old rotated logs
off the disk (the limits are rearm.retention's).

Driven by the event bus, never by a timer (an idle daemon does not wake up): at the start, and
then each time enough events were added since the last round, one round runs soon after, in
batches, so that it never holds the loop for long. A crash loop adds events fast, so it is the
very thing that triggers the rounds that keep it from filling the disk.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import TYPE_CHECKING

from rearm.retention import Retention, sweep
from rearm.store import PRUNE_BATCH, EventRow, Store

if TYPE_CHECKING:
    from rearm.daemon.supervisor import Supervisor
    from rearm.paths import Home

log = logging.getLogger("rearm")
DAY = 86_400.0


class Housekeeping:
    def __init__(self, home: Home, store: Store, supervisor: Supervisor) -> None:
        self.home = home
        self.store = store
        self.supervisor = supervisor
        self.retention = Retention()
        self._added = 0
        self._due = False

    @property
    def every(self) -> int:
        """Events between two rounds: a tenth of what is kept, at least 100, at most 1,000."""
        return max(100, min(1000, self.retention.events_max // 10))

    def offer(self, event: EventRow) -> None:
        """A bus listener: counts the events, and asks for a round when enough came."""
        self._added += 1
        if self._added >= self.every and not self._due:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not serving yet: the start's own round comes anyway
                return
            self._due = True
            loop.call_soon(self.run)

    def run(self) -> None:
        """One round. Never raises: a full disk or a locked database waits for the next."""
        self._due = False
        self._added = 0
        if self.store.failure is not None:
            return  # var/ takes no writes: the state waits to be written, not pruned
        r = self.retention
        now = time.time()
        try:
            events = self.store.prune_events(now - r.events_days * DAY, r.events_max)
            faults = self.store.prune_faults(self.supervisor.fault_windows(now))
        except sqlite3.DatabaseError as e:
            log.warning("housekeeping: the state database was not pruned: %s", e)
            return
        logs = 0
        for folder in (self.home.watch_logs, self.home.group_logs):
            logs += sweep(folder, r.watch_log_days * DAY, now, keep=r.watch_log_keep)
        if events or faults or logs:
            log.info(
                "housekeeping: %d old event(s), %d fault(s) and %d rotated log(s) removed",
                events,
                faults,
                logs,
            )
        if PRUNE_BATCH in (events, faults):
            self._due = True  # more to do: another round soon, after what else is waiting
            asyncio.get_running_loop().call_soon(self.run)
