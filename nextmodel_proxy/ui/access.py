"""Who is looking at the dashboard: open mode, the admin (everything) or one key (its own receipts only).

A browser signs in once with a key through the login form; the proxy keeps the key in memory behind a random
session id in an HttpOnly, SameSite=Strict cookie, and re-checks it on every page, so a revoked key is out at
once. Scripts send `Authorization: Bearer` instead. The key itself is never rendered or logged.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from nextmodel_proxy.access.auth import KeyStore, Principal
from nextmodel_proxy.errors import ProxyError

COOKIE = "nmproxy_ui"
SESSION_TTL_S = 12 * 3600
MAX_SESSIONS = 10_000


@dataclass(frozen=True, slots=True)
class Viewer:
    """What one dashboard request may see: every receipt (key_id None) or only one key's."""

    key_id: str | None
    label: str
    signed_in: bool  # a session or a bearer header (so the page offers "sign out")

    @property
    def sees_all(self) -> bool:
        return self.key_id is None


OPEN_VIEWER = Viewer(None, "open mode (no keys on this proxy)", False)


class NeedsLogin(Exception):
    """No usable credentials: send the browser to the login form (scripts get a 401)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class Sessions:
    """Session id -> (key, expiry), in memory only: a restart signs everyone out."""

    def __init__(self) -> None:
        self._by_id: dict[str, tuple[str, float]] = {}

    def create(self, key: str) -> str:
        self._expire()
        if len(self._by_id) >= MAX_SESSIONS:  # bounded: the oldest sessions go first
            for sid in sorted(self._by_id, key=lambda s: self._by_id[s][1])[: MAX_SESSIONS // 10]:
                del self._by_id[sid]
        sid = secrets.token_urlsafe(32)
        self._by_id[sid] = (key, time.monotonic() + SESSION_TTL_S)
        return sid

    def key_of(self, sid: str | None) -> str | None:
        entry = self._by_id.get(sid or "")
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def drop(self, sid: str | None) -> None:
        self._by_id.pop(sid or "", None)

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [s for s, (_, exp) in self._by_id.items() if exp < now]:
            del self._by_id[sid]


def viewer_for(keys: KeyStore, sessions: Sessions, headers: Mapping[str, str], cookie: str | None) -> Viewer:
    """The viewer behind a bearer header or a session cookie; open mode sees everything; else NeedsLogin."""
    authorization = headers.get("Authorization")
    if not authorization:
        key = sessions.key_of(cookie)
        authorization = f"Bearer {key}" if key else None
    try:
        principal = keys.authenticate(authorization)
    except ProxyError as exc:
        raise NeedsLogin(exc.message if authorization else "") from None
    if principal is None:
        return OPEN_VIEWER
    return _viewer_of(principal)


def _viewer_of(principal: Principal) -> Viewer:
    if principal.is_admin:
        return Viewer(None, f"admin ({principal.name or principal.key_id})", True)
    return Viewer(principal.key_id, f"key {principal.name or principal.key_id}", True)


def check_login(keys: KeyStore, key: str) -> Viewer:
    """The viewer a submitted key would be; ProxyError(401) for a wrong, revoked or expired key."""
    if not key or len(key) > 512 or not key.isprintable():
        raise ProxyError(401, "That is not a key of this proxy.", "invalid_api_key")
    principal = keys.authenticate(f"Bearer {key}")
    return OPEN_VIEWER if principal is None else _viewer_of(principal)
