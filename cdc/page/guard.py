"""Who may act on the status page: the admin token, sign-in sessions and CSRF tokens.

Without a configured token nobody may act (every action is refused). With one, an
admin signs in once with it and gets a random session id (an HttpOnly, SameSite=Strict
cookie); every action then needs that session and the CSRF token the page embedded in
its form, an HMAC of the session id under a key that lives only in this process.
Pure: time is an argument.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

#: A session lasts this long after sign-in.
SESSION_TTL_S = 8 * 3600.0
#: Sessions kept at most (the oldest goes first).
MAX_SESSIONS = 32


class AdminGuard:
    """Admin sign-in and CSRF checks for one process."""

    __slots__ = ("_key", "_sessions", "_token")

    def __init__(self, token: str, *, key: bytes | None = None) -> None:
        """``token``: the configured admin token ("" refuses every action)."""
        self._token = token
        self._key = key if key is not None else secrets.token_bytes(32)
        self._sessions: dict[str, float] = {}  # session id -> expires at

    @property
    def enabled(self) -> bool:
        return bool(self._token)

    def sign_in(self, offered: str, now: float) -> str | None:
        """A new session id when ``offered`` is the admin token, else None."""
        if not self._token or not hmac.compare_digest(offered.encode("utf-8"), self._token.encode("utf-8")):
            return None
        self._expire(now)
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[min(self._sessions, key=self._sessions.__getitem__)]
        session = secrets.token_urlsafe(32)
        self._sessions[session] = now + SESSION_TTL_S
        return session

    def sign_out(self, session: str | None) -> None:
        if session is not None:
            self._sessions.pop(session, None)

    def is_signed_in(self, session: str | None, now: float) -> bool:
        if not self._token or not session:
            return False
        expires = self._sessions.get(session)
        return expires is not None and expires > now

    def csrf_token(self, session: str) -> str:
        """The token the page's forms carry for this session."""
        return hmac.new(self._key, b"csrf:" + session.encode("utf-8"), hashlib.sha256).hexdigest()

    def may_act(self, session: str | None, csrf: str | None, now: float) -> bool:
        """A signed-in session whose form carried its own CSRF token."""
        if session is None or not csrf or not self.is_signed_in(session, now):
            return False
        return hmac.compare_digest(csrf.encode("utf-8"), self.csrf_token(session).encode("utf-8"))

    def _expire(self, now: float) -> None:
        for session in [s for s, expires in self._sessions.items() if expires <= now]:
            del self._sessions[session]
