"""Proxy keys in SQLite: generate, store hashed, list, revoke, rotate. Plain sync functions on a connection."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from nextmodel_proxy.timespec import format_utc, format_utc_or_none, parse_utc, utc_now

KEY_PREFIX = "nm-"
PREFIX_CHARS = 8  # display fragment after "nm-"; 48 bits, never enough to guess the 256-bit secret
CHANGES_KEY = "auth_changes"


class KeyNotFound(LookupError):
    """No key (or more than one) matches an id or display prefix."""


def hash_key(plaintext: str) -> str:
    """SHA-256 hex: keys carry 256 random bits, so a slow password hash would add nothing but latency."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly generated key; `plaintext` exists only in memory and is shown once."""

    plaintext: str
    key_id: str
    prefix: str
    hash: str


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One api_keys row without its hash."""

    key_id: str
    prefix: str
    name: str | None
    project: str | None
    team: str | None
    environment: str | None
    is_admin: bool
    rpm: int | None
    tpm: int | None
    models: frozenset[str] | None
    expires_at: dt.datetime | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    rotated_from: str | None

    @property
    def display_prefix(self) -> str:
        return f"{KEY_PREFIX}{self.prefix}"

    def status(self, now: dt.datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True, slots=True)
class KeySettings:
    """What a key may do; copied unchanged by rotate."""

    project: str | None = None
    team: str | None = None
    environment: str | None = None
    name: str | None = None
    is_admin: bool = False
    rpm: int | None = None
    tpm: int | None = None
    models: frozenset[str] | None = None
    expires_at: dt.datetime | None = None


def key_json(record: KeyRecord, now: dt.datetime) -> dict[str, Any]:
    """A key for `keys list --json`, `keys show` and the admin API: never a hash, never the secret."""
    return {
        "key_id": record.key_id,
        "prefix": record.display_prefix,
        "name": record.name,
        "project": record.project,
        "team": record.team,
        "environment": record.environment,
        "admin": record.is_admin,
        "status": record.status(now),
        "rpm": record.rpm,
        "tpm": record.tpm,
        "models": sorted(record.models) if record.models is not None else None,
        "expires_at": format_utc_or_none(record.expires_at),
        "created_at": format_utc_or_none(record.created_at),
        "revoked_at": format_utc_or_none(record.revoked_at),
        "rotated_from": record.rotated_from,
    }


def generate_key() -> NewKey:
    """A new secret 'nm-' + 43 url-safe chars (32 bytes from `secrets`), its id, display prefix and hash."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    return NewKey(
        plaintext,
        "key_" + secrets.token_hex(6),
        plaintext[len(KEY_PREFIX) :][:PREFIX_CHARS],
        hash_key(plaintext),
    )


def bump_changes(conn: sqlite3.Connection) -> None:
    """Count a key/budget change so running proxies reload within their refresh interval."""
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, '1') "
        "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        (CHANGES_KEY,),
    )


def read_changes(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (CHANGES_KEY,)).fetchone()
    return int(row[0]) if row else 0


def create_key(
    conn: sqlite3.Connection,
    settings: KeySettings,
    *,
    now: dt.datetime | None = None,
    rotated_from: str | None = None,
) -> tuple[NewKey, KeyRecord]:
    """Insert a new key (caller owns the transaction); the plaintext is returned, never stored."""
    new = generate_key()
    models = orjson.dumps(sorted(settings.models)).decode() if settings.models is not None else None
    expires = format_utc(settings.expires_at) if settings.expires_at else None
    conn.execute(
        "INSERT INTO api_keys (key_id, prefix, hash, name, project, team, environment, is_admin, rpm, tpm,"
        " models, expires_at, created_at, revoked_at, rotated_from) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,NULL,?)",
        (
            new.key_id,
            new.prefix,
            new.hash,
            settings.name,
            settings.project,
            settings.team,
            settings.environment,
            int(settings.is_admin),
            settings.rpm,
            settings.tpm,
            models,
            expires,
            format_utc(now or utc_now()),
            rotated_from,
        ),
    )
    bump_changes(conn)
    return new, get_key(conn, new.key_id)


_COLUMNS = (
    "key_id, prefix, name, project, team, environment, is_admin, rpm, tpm, models, expires_at,"
    " created_at, revoked_at, rotated_from"
)


def _record(row: tuple) -> KeyRecord:
    models = frozenset(orjson.loads(row[9])) if row[9] is not None else None
    return KeyRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        bool(row[6]),
        row[7],
        row[8],
        models,
        parse_utc(row[10]),
        parse_utc(row[11]),
        parse_utc(row[12]),
        row[13],
    )


def list_keys(conn: sqlite3.Connection) -> list[KeyRecord]:
    return [_record(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, key_id")]


def keys_with_hashes(conn: sqlite3.Connection) -> list[tuple[str, KeyRecord]]:
    """(hash, record) pairs for the in-memory KeyStore; the only reader of the hash column."""
    rows = conn.execute(f"SELECT hash, {_COLUMNS} FROM api_keys").fetchall()
    return [(r[0], _record(r[1:])) for r in rows]


def get_key(conn: sqlite3.Connection, id_or_prefix: str) -> KeyRecord:
    """By key id, or by display prefix ('nm-AbCdEfGh' or 'AbCdEfGh'); raises KeyNotFound if none or ambiguous."""
    ref = id_or_prefix.strip().rstrip("…")
    rows = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", (ref,)).fetchall()
    if not rows:
        prefix = ref[len(KEY_PREFIX) :] if ref.startswith(KEY_PREFIX) else ref
        rows = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE prefix = ?", (prefix,)).fetchall()
    if not rows:
        raise KeyNotFound(f"no key with id or prefix {id_or_prefix!r}")
    if len(rows) > 1:
        ids = ", ".join(r[0] for r in rows)
        raise KeyNotFound(f"prefix {id_or_prefix!r} matches several keys ({ids}); use the key id")
    return _record(rows[0])


def revoke_key(conn: sqlite3.Connection, id_or_prefix: str, *, now: dt.datetime | None = None) -> KeyRecord:
    """Mark a key revoked (caller owns the transaction); revoking twice is an error so typos are noticed."""
    record = get_key(conn, id_or_prefix)
    if record.revoked_at is not None:
        raise ValueError(f"key {record.key_id} was already revoked at {format_utc(record.revoked_at)}")
    conn.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE key_id = ?", (format_utc(now or utc_now()), record.key_id)
    )
    bump_changes(conn)
    return get_key(conn, record.key_id)


def rotate_key(
    conn: sqlite3.Connection, id_or_prefix: str, *, now: dt.datetime | None = None
) -> tuple[NewKey, KeyRecord]:
    """New secret with the same settings; the old key is revoked and its key budgets move to the new id."""
    old = get_key(conn, id_or_prefix)
    if old.revoked_at is not None:
        raise ValueError(f"key {old.key_id} is revoked; create a new key instead")
    now = now or utc_now()
    settings = KeySettings(
        old.project,
        old.team,
        old.environment,
        old.name,
        old.is_admin,
        old.rpm,
        old.tpm,
        old.models,
        old.expires_at,
    )
    revoke_key(conn, old.key_id, now=now)
    new, record = create_key(conn, settings, now=now, rotated_from=old.key_id)
    conn.execute(
        "UPDATE budgets SET scope_id = ? WHERE scope = 'key' AND scope_id = ?", (new.key_id, old.key_id)
    )
    return new, record


def key_lineage(conn: sqlite3.Connection, key_id: str) -> list[str]:
    """The key id and every id it was rotated from, so a rotated key keeps its period's spend."""
    rows = conn.execute(
        "WITH RECURSIVE chain(id) AS (SELECT ? UNION SELECT k.rotated_from FROM api_keys k JOIN chain"
        " ON k.key_id = chain.id WHERE k.rotated_from IS NOT NULL) SELECT id FROM chain",
        (key_id,),
    ).fetchall()
    return [r[0] for r in rows]


def parse_models(text: str | None) -> frozenset[str] | None:
    """'a,b' -> frozenset; empty or None means any model."""
    names: Iterable[str] = (m.strip() for m in (text or "").split(","))
    models = frozenset(m for m in names if m)
    return models or None
