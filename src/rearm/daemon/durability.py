"""When var/ takes no writes (full, read-only, failing): say so once, retry, say when it is over.

The store keeps what it could not write (store.py); services keep running and keep being
restarted from the state in memory. This part only tells the operator -- a critical
`state_write_failed` event (logged, alerted) and `rearm status` -- and retries with a backoff
on the monotonic clock until everything kept is written, then `state_write_recovered`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from rearm.daemon.bus import EventBus
from rearm.store import Store, WriteFailure

# Seconds between retries. A retry on a full disk is one failed transaction: cheap, so the
# backoff stays short and the state is written soon after space returns.
BACKOFF = (0.5, 1.0, 2.0, 5.0)


class StateWrites:
    def __init__(self, store: Store, bus: EventBus, var: str) -> None:
        self.store = store
        self.bus = bus
        self.var = var
        self._timer: asyncio.TimerHandle | None = None
        self._tries = 0
        store.tolerate_write_failures(self._failed)

    def _failed(self, failure: WriteFailure) -> None:
        # Called by the store in the middle of a write (maybe inside a transaction): report
        # from the loop, once that write is over.
        # Without a loop (not yet, or no more) there is nothing to schedule: the stop logs it.
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_soon(self._report, failure)

    def _report(self, failure: WriteFailure) -> None:
        if self.store.failure is not failure:
            return  # over already (an armload's retry got through)
        self.bus.emit(
            "state_write_failed",
            f"cannot write the state in {self.var}: {failure.error}. Services keep running and "
            "are restarted as usual; their state is kept in memory and written as soon as "
            f"{self.var} takes writes again (retrying). New armloads are refused until then.",
            severity="critical",
            data={"error": failure.error, "var": self.var},
        )
        self._tries = 0
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        delay = BACKOFF[min(self._tries, len(BACKOFF) - 1)]
        self._timer = asyncio.get_running_loop().call_later(delay, self._retry)

    def _retry(self) -> None:
        self._timer = None
        if self.try_now():
            return
        self._tries += 1
        self._schedule()

    def try_now(self) -> bool:
        """Write what was kept, now. True when the state is written (or nothing was pending)."""
        failure = self.store.failure
        if failure is None:
            return True
        pending, dropped = self.store.pending_writes, self.store.dropped_events
        if not self.store.retry():
            return False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        seconds = time.time() - failure.since
        self.bus.emit(
            "state_write_recovered",
            f"the state in {self.var} is written again after {seconds:.0f} s: {pending} kept "
            "write(s) made"
            + (f"; the {dropped} oldest event(s) of the outage were dropped" if dropped else ""),
            severity="warning",
            data={"seconds": round(seconds, 1), "writes": pending, "dropped_events": dropped},
        )
        return True

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
