"""Manager sessions: random 256-bit identifiers, kept in the daemon's memory only.

A restart of the daemon logs everyone out, which is fine for an admin console and means no
session secret is ever written to disk. Each session carries its own CSRF token and the
password hash it was opened with: a new password (`rearm passwd`) ends the old sessions.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

COOKIE = "rearm_session"
IDLE_SECONDS = 8 * 3600  # a console left open over a working day stays logged in
MAX_SECONDS = 24 * 3600  # but never longer than a day without typing the password again
MAX_SESSIONS = 1000  # bounded memory: the oldest session goes first


@dataclass
class Session:
    token: str
    user: str
    role: str
    password_hash: str
    client: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)
    flashes: list[tuple[str, str]] = field(default_factory=list)  # (level, text), shown once

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def flash(self, text: str, level: str = "info") -> None:
        self.flashes.append((level, text))
        del self.flashes[:-5]

    def take_flashes(self) -> list[tuple[str, str]]:
        out, self.flashes = self.flashes, []
        return out


class SessionStore:
    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}

    def create(self, user: str, role: str, password_hash: str, client: str) -> Session:
        if len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.seen)
            del self._sessions[oldest.token]
        session = Session(secrets.token_urlsafe(32), user, role, password_hash, client)
        self._sessions[session.token] = session
        return session

    def get(self, token: str | None, now: float | None = None) -> Session | None:
        """The live session for a cookie value; an expired one is dropped."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        now = time.monotonic() if now is None else now
        if now - session.seen > IDLE_SECONDS or now - session.created > MAX_SECONDS:
            self.drop(session)
            return None
        session.seen = now
        return session

    def drop(self, session: Session) -> None:
        self._sessions.pop(session.token, None)

    def __len__(self) -> int:
        return len(self._sessions)
