"""Who is calling: Bearer key -> Principal, open mode, admin checks, and the safe-bind rule."""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import ipaddress
import logging
import os
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nextmodel_proxy.access.keys import KeyRecord, hash_key, keys_with_hashes, read_changes
from nextmodel_proxy.config import Config
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.ledger import schema as db
from nextmodel_proxy.timespec import format_utc, utc_now

log = logging.getLogger(__name__)

ADMIN_ENV = "NMPROXY_ADMIN_KEY"
ADMIN_ENV_KEY_ID = "admin:env"
_MISSING = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
_INCORRECT = "Incorrect API key provided. Ask the proxy's operator for a key (nmproxy keys create)."


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated key and what it may do."""

    key_id: str
    name: str | None
    project: str | None
    team: str | None
    environment: str | None
    is_admin: bool = False
    rpm: int | None = None
    tpm: int | None = None
    models: frozenset[str] | None = None
    expires_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who a request is billed to: a key's settings, or the x-nextmodel-* headers in open mode."""

    key_id: str | None
    project: str | None
    team: str | None
    environment: str | None = None


class Refreshable(Protocol):
    def refresh_if_changed(self, conn: sqlite3.Connection) -> bool: ...


def principal_of(record: KeyRecord) -> Principal:
    return Principal(
        record.key_id,
        record.name,
        record.project,
        record.team,
        record.environment,
        record.is_admin,
        record.rpm,
        record.tpm,
        record.models,
        record.expires_at,
    )


def attribute(
    principal: Principal | None, headers: Mapping[str, str], config: Config | None = None
) -> Attribution:
    """A key's own project/team win; open mode reads x-nextmodel-project/-team; a project's team fills a gap."""
    if principal is not None:
        project, team, env, key_id = (
            principal.project,
            principal.team,
            principal.environment,
            principal.key_id,
        )
    else:
        project = headers.get("x-nextmodel-project") or None
        team = headers.get("x-nextmodel-team") or None
        env, key_id = headers.get("x-nextmodel-environment") or None, None
    if team is None and project and config is not None and project in config.projects:
        team = config.projects[project].team
    return Attribution(key_id, project, team, env)


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal
    display_prefix: str
    revoked_at: dt.datetime | None


class KeyStore:
    """In-memory hash -> key map, reloaded when the keys change; authenticate() never touches the DB."""

    def __init__(self, admin_key: str | None = None) -> None:
        self._admin_key = admin_key or None
        self._entries: dict[str, _Entry] = {}
        self._changes = -1

    @classmethod
    def from_db(cls, conn: sqlite3.Connection, admin_key: str | None = None) -> KeyStore:
        """Loaded now; `admin_key` defaults to env NMPROXY_ADMIN_KEY."""
        store = cls(os.environ.get(ADMIN_ENV) if admin_key is None else admin_key)
        store.refresh_if_changed(conn)
        return store

    @property
    def open_mode(self) -> bool:
        """No key was ever created and no admin key is set (a revoked last key keeps the proxy closed).

        An admin key closes the proxy too: `serve` treats it as a key when deciding a public bind is safe."""
        return not self._entries and not self._admin_key

    def refresh_if_changed(self, conn: sqlite3.Connection) -> bool:
        """Reload if the change counter moved; one indexed read otherwise. Returns whether it reloaded."""
        changes = read_changes(conn)
        if changes == self._changes:
            return False
        self._entries = {
            h: _Entry(principal_of(r), r.display_prefix, r.revoked_at) for h, r in keys_with_hashes(conn)
        }
        self._changes = changes
        log.info("loaded %d proxy keys", len(self._entries))
        return True

    def authenticate(self, authorization: str | None, *, now: dt.datetime | None = None) -> Principal | None:
        """The caller's Principal; None in open mode without an admin key; ProxyError 401 otherwise."""
        token = _bearer(authorization)
        if token is not None and not _is_token_text(token):
            # Bytes that are not printable ASCII (aiohttp hands them over as surrogates) are no key of ours.
            if self.open_mode:
                return None
            raise _unauthorized(_INCORRECT)
        if token and self._admin_key and hmac.compare_digest(token.encode(), self._admin_key.encode()):
            return Principal(ADMIN_ENV_KEY_ID, ADMIN_ENV, None, None, None, is_admin=True)
        if self.open_mode:
            return None
        if not token:
            raise _unauthorized(_MISSING)
        entry = self._entries.get(hash_key(token))
        if entry is None:
            raise _unauthorized(_INCORRECT)
        if entry.revoked_at is not None:
            raise _unauthorized(
                f"The API key {entry.display_prefix}… has been revoked "
                f"(at {format_utc(entry.revoked_at)}). Use a current key."
            )
        expires = entry.principal.expires_at
        if expires is not None and expires <= (now or utc_now()):
            raise _unauthorized(
                f"The API key {entry.display_prefix}… expired at {format_utc(expires)}. Ask for a new key."
            )
        return entry.principal


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _is_token_text(token: str) -> bool:
    """Keys are printable ASCII; anything else (e.g. non-UTF-8 bytes) cannot match one."""
    return token.isascii() and token.isprintable()


def _unauthorized(message: str) -> ProxyError:
    return ProxyError(401, message, "invalid_api_key", type="invalid_request_error")


def check_model(principal: Principal | None, model: str) -> None:
    """403 permission_denied when the key is limited to other models."""
    if principal is None or principal.models is None or model in principal.models:
        return
    allowed = ", ".join(sorted(principal.models))
    raise ProxyError(
        403,
        f"This API key may not use model {model!r} (allowed: {allowed}).",
        "permission_denied",
        param="model",
    )


def require_admin(principal: Principal | None) -> Principal:
    """The admin endpoints need an admin key, in open mode too."""
    if principal is None:
        raise _unauthorized(
            "This endpoint needs an admin key (nmproxy keys create --admin, "
            f"or env {ADMIN_ENV}) in an Authorization: Bearer header."
        )
    if not principal.is_admin:
        raise ProxyError(403, "This endpoint needs an admin key; this key is not one.", "permission_denied")
    return principal


def can_read_project(principal: Principal | None, project: str | None) -> bool:
    """Admins read every receipt; a normal key only its own project's."""
    if principal is None:
        return False
    return principal.is_admin or (principal.project is not None and principal.project == project)


class UnsafeBindError(RuntimeError):
    """Serving without keys on an address other machines can reach."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, has_keys: bool, allow_open: bool) -> None:
    """Refuse open mode on a non-loopback host unless explicitly allowed."""
    if has_keys or allow_open or is_loopback(host):
        return
    raise UnsafeBindError(
        f"refusing to serve on {host} without API keys: anyone who can reach it could spend your provider "
        "credit. Create a key (nmproxy keys create --project P), bind 127.0.0.1, or pass --allow-open."
    )


def _refresh_once(db_path: str | Path, targets: Sequence[Refreshable]) -> None:
    conn = db.connect(db_path, readonly=True)
    try:
        for target in targets:
            target.refresh_if_changed(conn)
    finally:
        conn.close()


async def run_refresher(db_path: str | Path, targets: Sequence[Refreshable], interval_s: float = 0.5) -> None:
    """Poll the change counter and reload `targets`; run as a task, cancel to stop.

    Each poll opens, reads and closes its own connection inside the worker thread: cancelling the task
    while a poll runs must never close a connection another thread is still using.
    """
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(_refresh_once, db_path, targets)
        except sqlite3.Error as exc:  # a transient lock must not stop future refreshes
            log.warning("key/budget refresh failed: %s", exc)
