"""The event bus: every event is stored, logged, and handed to each live subscriber.

Subscribers (`rearm log --follow`, later alerts, metrics and the Manager) get a bounded queue of
their own; one that falls behind loses its oldest events and is told how many, so a slow reader
can never hold up recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from rearm.store import EventRow, Store

log = logging.getLogger("rearm")

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
QUEUE_SIZE = 1000


class Subscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[EventRow] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = 0

    def offer(self, event: EventRow) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)


class EventBus:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._subscribers: set[Subscription] = set()
        # Called with every event, synchronously: alerts and metrics. Must not block or raise.
        self.listeners: list[Callable[[EventRow], None]] = []
        self._held: list[EventRow] | None = None

    def emit(
        self,
        kind: str,
        message: str,
        *,
        severity: str = "info",
        group: str | None = None,
        watch: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> EventRow:
        """Record an event. Inside a store transaction it commits (or not) with that transaction."""
        event = self.store.add_event(time.time(), kind, severity, group, watch, message, data)
        if self._held is not None:
            self._held.append(event)
        else:
            self._publish(event)
        return event

    def _publish(self, event: EventRow) -> None:
        log.log(LEVELS.get(event.severity, logging.INFO), "%s: %s", event.kind, event.message)
        for sub in self._subscribers:
            sub.offer(event)
        for listener in self.listeners:
            listener(event)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Events emitted in the block are stored at once, as always, but logged and handed to
        subscribers and listeners when it ends, in order. The restart path holds them: writing
        the log lines and queueing alerts takes a good part of a restart, and can wait until
        the target has been started again."""
        if self._held is not None:  # already held by an outer block, which publishes them
            yield
            return
        self._held = []
        try:
            yield
        finally:
            events, self._held = self._held, None
            for event in events:
                self._publish(event)

    def subscribe(self) -> Subscription:
        sub = Subscription()
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
