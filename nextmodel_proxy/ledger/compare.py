"""Reprice the real chat workload in the ledger under other models (read-only SQL, exact Decimal)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from nextmodel_proxy import pricing, usage
from nextmodel_proxy.config import ModelConfig, Price

# Rows that are real traffic with usage: answered upstream (fresh) or replayed from the exact cache.
_WORKLOAD_SQL = """
SELECT model, served_mode, COUNT(*),
       COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(cached_tokens), 0),
       COALESCE(SUM(cache_write_tokens), 0), COALESCE(SUM(completion_tokens), 0),
       COALESCE(SUM(billed_cost_pusd), 0), SUM(billed_cost_pusd IS NULL), SUM(prompt_tokens IS NULL)
FROM receipts
WHERE endpoint = 'chat' AND served_mode IN ('fresh', 'exact-cache')
  AND (? IS NULL OR created_utc >= ?) AND (? IS NULL OR project = ?)
GROUP BY model, served_mode
ORDER BY model, served_mode
"""


@dataclass(frozen=True, slots=True)
class Usage:
    """Summed token counts of a set of requests (OpenAI semantics: cached and writes are part of prompt)."""

    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.requests + other.requests,
            self.prompt_tokens + other.prompt_tokens,
            self.cached_tokens + other.cached_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.completion_tokens + other.completion_tokens,
        )

    def tokens(self) -> usage.Usage:
        """The summed counts as pricing's Usage, so compare and receipts price with one formula."""
        return usage.Usage(
            self.prompt_tokens, self.completion_tokens, self.cached_tokens, self.cache_write_tokens
        )


@dataclass(frozen=True, slots=True)
class ModelWorkload:
    """What one served model actually handled, split into fresh answers and cache replays."""

    model: str
    fresh: Usage = field(default_factory=Usage)
    replayed: Usage = field(default_factory=Usage)
    billed_pusd: int = 0  # sum over rows whose cost is known
    unknown_cost_rows: int = 0
    no_usage_rows: int = 0  # counted as requests but contributing no tokens


@dataclass(frozen=True, slots=True)
class Workload:
    models: tuple[ModelWorkload, ...]

    @property
    def fresh(self) -> Usage:
        return sum((m.fresh for m in self.models), Usage())

    @property
    def replayed(self) -> Usage:
        return sum((m.replayed for m in self.models), Usage())

    @property
    def hit_rate(self) -> Decimal:
        """Share of requests answered from the exact cache."""
        total = self.fresh.requests + self.replayed.requests
        return Decimal(self.replayed.requests) / total if total else Decimal(0)

    @property
    def billed(self) -> Decimal:
        return pricing.from_pusd(sum(m.billed_pusd for m in self.models))

    @property
    def unknown_cost_rows(self) -> int:
        return sum(m.unknown_cost_rows for m in self.models)


@dataclass(frozen=True, slots=True)
class Repriced:
    """The whole workload priced under one model."""

    model: str
    all_fresh: Decimal  # every request sent upstream, no exact cache
    with_cache: Decimal  # fresh requests, plus replays at the replay price ratio
    assumed: tuple[str, ...] = ()  # prices the model lacks, billed at the input price instead


def load_workload(
    conn: sqlite3.Connection, *, since_utc: str | None = None, project: str | None = None
) -> Workload:
    """Group chat receipts by served model, fresh vs exact-cache, optionally since a UTC timestamp."""
    by_model: dict[str, dict] = {}
    for row in conn.execute(_WORKLOAD_SQL, (since_utc, since_utc, project, project)):
        model, mode, count, prompt, cached, writes, completion, billed, unknown, no_usage = row
        usage = Usage(count, prompt, cached, writes, completion)
        entry = by_model.setdefault(model or "?", {"billed": 0, "unknown": 0, "no_usage": 0})
        entry["fresh" if mode == "fresh" else "replayed"] = usage
        entry["billed"] += billed
        entry["unknown"] += unknown or 0
        entry["no_usage"] += no_usage or 0
    return Workload(
        tuple(
            ModelWorkload(
                model=name,
                fresh=e.get("fresh", Usage()),
                replayed=e.get("replayed", Usage()),
                billed_pusd=e["billed"],
                unknown_cost_rows=e["unknown"],
                no_usage_rows=e["no_usage"],
            )
            for name, e in by_model.items()
        )
    )


def usage_cost(usage: Usage, price: Price) -> Decimal:
    """Exact USD cost of summed usage at `price` (per 1M tokens), by pricing.cost like every receipt.

    Cache reads/writes without their own price are billed at the input price, as the provider would.
    """
    amount = pricing.cost(usage.tokens(), price).amount
    assert amount is not None  # only None without a price or usage, and both are given here
    return amount


def reprice(workload: Workload, model: ModelConfig, replay_price_ratio: Decimal) -> Repriced | None:
    """The workload under `model`'s price; None for an unpriced model."""
    if model.price is None:
        return None
    fresh = usage_cost(workload.fresh, model.price)
    replayed = usage_cost(workload.replayed, model.price)
    total = workload.fresh + workload.replayed
    # Only a missing price this workload actually needs is worth a warning.
    assumed = tuple(
        name
        for name, value, tokens in (
            ("cached_input", model.price.cached_input, total.cached_tokens),
            ("cache_write", model.price.cache_write, total.cache_write_tokens),
        )
        if value is None and tokens
    )
    return Repriced(
        model=model.id,
        all_fresh=fresh + replayed,
        with_cache=fresh + replayed * replay_price_ratio,
        assumed=assumed,
    )


def compare(workload: Workload, models: Iterable[ModelConfig], replay_price_ratio: Decimal) -> list[Repriced]:
    """Reprice under each priced model, cheapest (with cache) first."""
    out = [r for r in (reprice(workload, m, replay_price_ratio) for m in models) if r is not None]
    return sorted(out, key=lambda r: (r.with_cache, r.model))
