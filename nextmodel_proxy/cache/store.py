"""The exact cache's storage: verified lookup, store, eviction, purge, stats (plain sync sqlite3 functions).

Writes (`store`, `evict`, `record_hit`, `record_miss`, `drop_bad`) run inside the ledger writer's
transaction via `Ledger.submit_op(fn)`; `lookup` runs on a separate read connection. The proxy keeps no
in-memory copy: every lookup is a primary-key point read of the SQLite file, so a `nmproxy cache purge`
from another process takes effect on the very next request, with nothing to invalidate.

Per request (pipeline, via cache/plan.py): `key.decide` -> if read: `canonical_request` + `cache_key` +
`lookup` (bad entries reported through `on_bad` -> submit `drop_bad`); a hit is replayed (`replay.replay`)
and a miss goes upstream, shared by identical misses in flight (cache/sharing.py). Hits and misses are not
written one by one: plan.CacheTally gathers them in memory and the services flush them as one writer op
(`record_hit`/`record_miss`) every 0.5 s and before each store. A complete answer (`replay.is_complete_*`)
-> submit `store_and_evict` with the fresh receipt id and cost.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import xxhash

from nextmodel_proxy.pricing import from_pusd, plain_amount

RESPONSE_KINDS = frozenset({"json", "sse"})
_EVICT_BATCH = 500


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A verified entry: its canonical request equals the incoming one and its body matches its checksum."""

    key: str
    response_kind: str  # 'json' (the upstream body) | 'sse' (the events back to back, replay.encode_events)
    body: bytes
    usage: dict[str, Any] | None
    fresh_receipt_id: str | None
    fresh_cost_pusd: int | None
    created_at: float


@dataclass(frozen=True, slots=True)
class CacheEntry(CacheHit):
    """One complete answer to store: a hit's fields plus the request it answers."""

    scope: str
    provider: str
    model: str  # the upstream model id
    endpoint: str
    canonical: bytes


@dataclass(frozen=True, slots=True)
class BadEntry:
    """An entry that failed verification; `body_hash` pins the row so a newer good entry is not dropped."""

    key: str
    reason: str  # 'canonical-mismatch' | 'checksum-mismatch'
    body_hash: str


def body_hash(body: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(body)


# --- read path (read connection) -------------------------------------------------------------------

_LOOKUP = (
    "SELECT canonical, response_kind, body, body_hash, usage, fresh_receipt_id, fresh_cost_pusd, created_at "
    "FROM cache_entries WHERE key = ?"
)


def lookup(
    conn: sqlite3.Connection,
    key: str,
    canonical: bytes,
    *,
    now: float,
    ttl_s: float,
    on_bad: Callable[[BadEntry], None] | None = None,
) -> CacheHit | None:
    """The verified entry for `key`, or None (absent, expired, or failed verification -> `on_bad` is told)."""
    row = conn.execute(_LOOKUP, (key,)).fetchone()
    if row is None:
        return None
    stored_canonical, kind, body, stored_hash, usage, receipt_id, fresh_cost, created_at = row
    if created_at + ttl_s <= now:
        return None  # expired: a plain miss; the next store overwrites it, eviction removes it
    if bytes(stored_canonical) != canonical:
        reason = "canonical-mismatch"  # two different requests on one key: forged or a real collision
    elif body_hash(body) != stored_hash:
        reason = "checksum-mismatch"  # the stored answer changed since it was written
    else:
        return CacheHit(
            key, kind, bytes(body), orjson.loads(usage) if usage else None, receipt_id, fresh_cost, created_at
        )
    if on_bad is not None:
        on_bad(BadEntry(key, reason, stored_hash))
    return None


# --- write path (the ledger writer's connection, inside its transaction) ---------------------------------


def drop_bad(conn: sqlite3.Connection, bad: BadEntry) -> None:
    """Delete an entry that failed verification (unless it was rewritten since) and count the failure."""
    conn.execute("DELETE FROM cache_entries WHERE key = ? AND body_hash = ?", (bad.key, bad.body_hash))
    conn.execute("UPDATE cache_stats SET verification_failures = verification_failures + 1 WHERE id = 1")


def record_hit(
    conn: sqlite3.Connection, key: str, now: float, bytes_saved: int, money_saved_pusd: int
) -> None:
    """Count one replay: entry recency (for LRU) and hit count, and the global saved totals."""
    conn.execute(
        "UPDATE cache_entries SET hits = hits + 1, last_used_at = max(last_used_at, ?) WHERE key = ?",
        (now, key),
    )
    conn.execute(
        "UPDATE cache_stats SET hits = hits + 1, bytes_saved = bytes_saved + ?, "
        "money_saved_pusd = money_saved_pusd + ? WHERE id = 1",
        (bytes_saved, money_saved_pusd),
    )


def record_miss(conn: sqlite3.Connection, count: int = 1) -> None:
    """Count cache reads that found nothing usable (for the hit rate)."""
    conn.execute("UPDATE cache_stats SET misses = misses + ? WHERE id = 1", (count,))


_UPSERT = """
INSERT INTO cache_entries (key, scope, provider, model, endpoint, canonical, response_kind, body, body_hash,
    usage, fresh_receipt_id, fresh_cost_pusd, size_bytes, created_at, last_used_at, hits)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)
ON CONFLICT (key) DO UPDATE SET scope = excluded.scope, provider = excluded.provider, model = excluded.model,
    endpoint = excluded.endpoint, canonical = excluded.canonical, response_kind = excluded.response_kind,
    body = excluded.body, body_hash = excluded.body_hash, usage = excluded.usage,
    fresh_receipt_id = excluded.fresh_receipt_id, fresh_cost_pusd = excluded.fresh_cost_pusd,
    size_bytes = excluded.size_bytes, created_at = excluded.created_at, last_used_at = excluded.last_used_at,
    hits = 0
"""


def store(conn: sqlite3.Connection, entry: CacheEntry) -> None:
    """Insert or overwrite (refresh) one entry; the checksum is computed here from the bytes stored."""
    if entry.response_kind not in RESPONSE_KINDS:
        raise ValueError(f"response_kind must be json or sse, not {entry.response_kind!r}")
    usage = orjson.dumps(entry.usage).decode() if entry.usage is not None else None
    conn.execute(
        _UPSERT,
        (
            entry.key,
            entry.scope,
            entry.provider,
            entry.model,
            entry.endpoint,
            entry.canonical,
            entry.response_kind,
            entry.body,
            body_hash(entry.body),
            usage,
            entry.fresh_receipt_id,
            entry.fresh_cost_pusd,
            len(entry.body) + len(entry.canonical),
            entry.created_at,
            entry.created_at,
        ),
    )
    conn.execute("UPDATE cache_stats SET stores = stores + 1 WHERE id = 1")


def _totals(conn: sqlite3.Connection) -> tuple[int, int]:
    row = conn.execute("SELECT entries, bytes FROM cache_stats WHERE id = 1").fetchone()
    return (row[0], row[1]) if row else (0, 0)


def evict(conn: sqlite3.Connection, *, max_entries: int, max_bytes: int, now: float, ttl_s: float) -> int:
    """Remove expired entries, then least recently used ones until both caps hold; returns how many."""
    removed = conn.execute("DELETE FROM cache_entries WHERE created_at <= ?", (now - ttl_s,)).rowcount
    entries, size = _totals(conn)
    while entries > max_entries or size > max_bytes:
        # Oldest first in bounded batches: each row is checked against the caps before it goes.
        rows = conn.execute(
            "SELECT key, size_bytes FROM cache_entries ORDER BY last_used_at, key LIMIT ?", (_EVICT_BATCH,)
        ).fetchall()
        if not rows:
            break
        victims = []
        for key, row_size in rows:
            if entries <= max_entries and size <= max_bytes:
                break
            victims.append((key,))
            entries, size = entries - 1, size - row_size
        conn.executemany("DELETE FROM cache_entries WHERE key = ?", victims)
        removed += len(victims)
    if removed:
        conn.execute("UPDATE cache_stats SET evictions = evictions + ? WHERE id = 1", (removed,))
    return removed


def store_and_evict(
    conn: sqlite3.Connection, entry: CacheEntry, *, max_entries: int, max_bytes: int, ttl_s: float
) -> int:
    """`store` then `evict` in the same transaction: the one op the proxy submits per complete answer."""
    store(conn, entry)
    return evict(conn, max_entries=max_entries, max_bytes=max_bytes, now=entry.created_at, ttl_s=ttl_s)


# --- maintenance (CLI) -----------------------------------------------------------------------------


def purge(
    conn: sqlite3.Connection,
    *,
    model: str | None = None,
    provider: str | None = None,
    older_than_s: float | None = None,
    all: bool = False,
    now: float,
) -> int:
    """Delete entries matching every filter given (or all of them); returns how many were deleted."""
    clauses, params = [], []
    if model is not None:
        clauses.append("model = ?")
        params.append(model)
    if provider is not None:
        clauses.append("provider = ?")
        params.append(provider)
    if older_than_s is not None:
        clauses.append("created_at <= ?")
        params.append(now - older_than_s)
    if not clauses and not all:
        raise ValueError("purge needs a filter (model, provider, older_than_s) or all=True")
    where = " AND ".join(clauses) if clauses else "1"
    return conn.execute(f"DELETE FROM cache_entries WHERE {where}", params).rowcount


def stats(conn: sqlite3.Connection) -> dict[str, Any]:
    """Entries, bytes, hits, misses, hit rate, bytes and money saved (exact), verification failures."""
    row = conn.execute(
        "SELECT entries, bytes, hits, misses, verification_failures, bytes_saved, money_saved_pusd, stores, "
        "evictions FROM cache_stats WHERE id = 1"
    ).fetchone()
    return _stats_dict(row or (0,) * 9)


def stats_empty() -> dict[str, Any]:
    """The stats of a database the cache has never been created in."""
    return _stats_dict((0,) * 9)


def _stats_dict(row: tuple[int, ...]) -> dict[str, Any]:
    entries, size, hits, misses, failures, bytes_saved, saved_pusd, stores, evictions = row
    lookups = hits + misses
    return {
        "entries": entries,
        "bytes": size,
        "hits": hits,
        "misses": misses,
        "hit_rate": round(hits / lookups, 4) if lookups else None,
        "bytes_saved": bytes_saved,
        "money_saved_pusd": saved_pusd,
        "money_saved_usd": plain_amount(from_pusd(saved_pusd)),
        "verification_failures": failures,
        "stores": stores,
        "evictions": evictions,
    }
