"""What every Manager request can reach: the daemon, the users, the sessions, the throttle.

One `Manager` per served application, kept under the MANAGER key of the aiohttp app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from aiohttp import web

from rearm.quota import Quota
from rearm.ratelog import RateLimitedLog
from rearm.web.sessions import COOKIE, Session, SessionStore
from rearm.web.settings import ManagerSettings, client_address, host_names
from rearm.web.throttle import LoginThrottle
from rearm.web.users import UserDirectory

if TYPE_CHECKING:
    from rearm.daemon.main import Daemon

log = logging.getLogger("rearm.web")

# argon2 needs 64 MiB and ~0.2 s of CPU per check: at most this many at once, off the loop.
VERIFY_SLOTS = 2
# Live pages (/live streams): each renders after every burst of events (live.py).
LIVE_PER_USER = 8
LIVE_TOTAL = 32


class Manager:
    def __init__(self, daemon: Daemon, settings: ManagerSettings) -> None:
        self.daemon = daemon
        self.settings = settings
        self.users = UserDirectory(daemon.home)
        self.sessions = SessionStore()
        self.throttle = LoginThrottle()
        self.verify_slots = asyncio.Semaphore(VERIFY_SLOTS)
        self.live_streams = Quota(LIVE_PER_USER, LIVE_TOTAL)  # open /live streams, by user
        self.lines = RateLimitedLog(log)
        # Set when the server shuts down: live streams end instead of holding the shutdown.
        self.closing = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    def hosts(self) -> frozenset[str]:
        return host_names(self.daemon.cluster, self.settings)

    def client_of(self, request: web.Request) -> str:
        """The client's address, seen through a trusted proxy (settings.trusted_proxies)."""
        return client_address(
            request.remote,
            request.headers.getall("X-Forwarded-For", []),
            self.settings.trusted_proxies,
        )

    def session_of(self, request: web.Request) -> Session | None:
        """The request's session, if its user still exists with the same password."""
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            return None
        user = self.users.get(session.user)
        if user is None or user.hash != session.password_hash:
            self.sessions.drop(session)
            return None
        session.role = user.role
        return session

    def background(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        # The loop keeps only weak references to tasks: hold them until they are done.
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        # Retrieved here so that a failure the page did not wait for is not reported as
        # "never retrieved"; the event log already holds it (e.g. group_error).
        if not task.cancelled() and task.exception() is not None:
            log.info("Manager action ended with: %s", task.exception())


MANAGER = web.AppKey("manager", Manager)


def manager_of(request: web.Request) -> Manager:
    return request.app[MANAGER]


def session_of(request: web.Request) -> Session:
    """The session the auth middleware found; only for routes behind the login."""
    session = request.get("session")
    assert isinstance(session, Session), "route reached without a session"
    return session
