"""The exact cache as the request path uses it: plan, headers, what may be stored, the entry to store."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from nextmodel_proxy.cache import replay
from nextmodel_proxy.cache import store as cache
from nextmodel_proxy.cache.key import (
    CacheDecision,
    cache_key,
    canonical_request,
    decide,
    header_mode,
    scope_for,
)
from nextmodel_proxy.cache.store import CacheEntry, CacheHit
from nextmodel_proxy.config import Config
from nextmodel_proxy.endpoints import wire
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.ledger.receipts import Receipt
from nextmodel_proxy.pricing import to_pusd
from nextmodel_proxy.upstream.base import Target

if TYPE_CHECKING:
    from nextmodel_proxy.request_state import JsonObject, RequestState

CACHE_HEADER = "x-nextmodel-cache"


@dataclass(frozen=True, slots=True)
class CachePlan:
    decision: CacheDecision
    key: str | None = None
    canonical: bytes | None = None
    scope: str | None = None

    @property
    def active(self) -> bool:
        return self.key is not None


def plan_cache(ex: RequestState, target: Target, config: Config) -> CachePlan:
    """Whether and under which key this request reads or writes the cache (key over the first candidate)."""
    decision = decide(
        ex.body,
        ex.caller.client_headers.get(CACHE_HEADER),
        config.cache,
        target.model.cache_policy,
        endpoint=ex.endpoint,
    )
    if decision.mode == "only" and not decision.read:
        raise cache_miss(f"x-nextmodel-cache: only, but this request is not cacheable ({decision.reason})")
    if not (decision.read or decision.write):
        return CachePlan(decision)
    scope = scope_for(config.cache.scope, project=ex.caller.project, key_id=ex.caller.key_id)
    canonical = canonical_request(
        ex.body,
        scope=scope,
        provider=target.provider.name,
        upstream_model=target.model.upstream_id,
        endpoint=ex.endpoint,
    )
    return CachePlan(decision, cache_key(canonical), canonical, scope)


class CacheTally:
    """Hit/miss bookkeeping gathered in memory and written in one op per flush.

    Writing it per request cost every replay a second commit (its receipt being the first).
    """

    __slots__ = ("hits", "misses")

    def __init__(self) -> None:
        self.hits: list[tuple[str, float, int, int]] = []  # key, when, bytes saved, money saved (pusd)
        self.misses = 0

    def hit(self, key: str, bytes_saved: int, money_saved_pusd: int) -> None:
        self.hits.append((key, time.time(), bytes_saved, money_saved_pusd))

    def miss(self) -> None:
        self.misses += 1

    def take(self) -> Callable[[sqlite3.Connection], None] | None:
        """The pending counts as one writer op (None when there is nothing to write); the tally restarts."""
        hits, misses = self.hits, self.misses
        if not hits and not misses:
            return None
        self.hits, self.misses = [], 0

        def write(conn: sqlite3.Connection) -> None:
            for key, when, saved_bytes, saved_pusd in hits:
                cache.record_hit(conn, key, when, saved_bytes, saved_pusd)
            if misses:
                cache.record_miss(conn, misses)

        return write


def refuse_only_without_cache(ex: RequestState) -> None:
    """`only` must never reach the upstream, even when this proxy keeps no cache at all."""
    if header_mode(ex.caller.client_headers.get(CACHE_HEADER)) == "only":
        raise cache_miss("x-nextmodel-cache: only, but this proxy keeps no cache (the ledger is disabled)")


def cache_miss(message: str) -> ProxyError:
    return ProxyError(504, message, "cache_miss")


def status_headers(plan: CachePlan, status: str) -> dict[str, str]:
    """x-nextmodel-cache (hit|miss|refresh|bypass), its reason when bypassed, and the key."""
    out = {CACHE_HEADER: status}
    if status == "bypass" and plan.decision.reason:
        out["x-nextmodel-cache-reason"] = plan.decision.reason
    if plan.key:
        out["x-nextmodel-cache-key"] = plan.key
    return out


def miss_status(plan: CachePlan) -> str:
    if not plan.active:
        return "bypass"
    return "refresh" if plan.decision.mode == "refresh" else "miss"


def storable_stream(events: list[bytes]) -> bool:
    return replay.is_complete_stream(events)


def storable_body(endpoint: str, obj: Any, status: int) -> bool:
    return wire.storable_body(endpoint, obj, status)


def entry_for(
    plan: CachePlan, target: Target, ex: RequestState, receipt: Receipt, kind: str, body: bytes
) -> CacheEntry:
    """The complete answer to store, pointing at the fresh receipt that paid for it."""
    now = time.time()
    assert plan.key is not None and plan.canonical is not None and plan.scope is not None
    fresh = receipt.fresh_cost_usd
    return CacheEntry(
        key=plan.key,
        response_kind=kind,
        body=body,
        usage=ex.outcome.usage,
        fresh_receipt_id=receipt.receipt_id,
        fresh_cost_pusd=to_pusd(fresh) if fresh is not None else None,
        created_at=now,
        scope=plan.scope,
        provider=target.provider.name,
        model=target.model.upstream_id,
        endpoint=ex.endpoint,
        canonical=plan.canonical,
    )


def hit_body(hit: CacheHit, ex: RequestState) -> bytes | list[bytes]:
    """The stored answer in the shape this request wants."""
    return wire.replay_body(
        ex.endpoint, hit.response_kind, hit.body, stream=ex.stream, include_usage=ex.client_wants_usage
    )


def flight_result(events: list[bytes], final: bytes | None) -> tuple[str, bytes]:
    """A finished flight as (kind, body), the same shape a cache entry has."""
    if final is not None:
        return "json", final
    return "sse", replay.encode_events(events)


def usage_from(kind: str, body: bytes, endpoint: str = "chat") -> dict[str, Any] | None:
    return wire.stored_usage(endpoint, kind, body)


def stored_answer(endpoint: str, kind: str, body: bytes) -> JsonObject | None:
    """A stored answer as one chat.completion (to estimate a replay whose provider reported no usage)."""
    if endpoint in wire.STREAM_KEYED:
        return None
    obj = orjson.loads(body) if kind == "json" else replay.sse_to_completion(replay.decode_events(body))
    return obj if isinstance(obj, dict) else None
