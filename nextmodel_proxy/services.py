"""The long-lived parts one proxy process owns: ledger writer, read connection, keys, budgets, limits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import statistics
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nextmodel_proxy.access.auth import KeyStore, run_refresher
from nextmodel_proxy.access.budgets import BudgetBook
from nextmodel_proxy.access.ratelimit import RateLimiter
from nextmodel_proxy.cache.plan import CacheTally, entry_for
from nextmodel_proxy.cache.sharing import SingleFlight
from nextmodel_proxy.cache.store import store_and_evict
from nextmodel_proxy.config import CacheConfig, Config, MetricsConfig
from nextmodel_proxy.ledger import schema as db
from nextmodel_proxy.ledger.receipts import Receipt
from nextmodel_proxy.ledger.writer import Ledger
from nextmodel_proxy.metrics import Metrics
from nextmodel_proxy.pricing import to_pusd

if TYPE_CHECKING:
    from nextmodel_proxy.request_state import RequestState

log = logging.getLogger(__name__)
LATENCY_REFRESH_S = 30.0
CACHE_TALLY_FLUSH_S = 0.5  # cache hit/miss counters reach the file this often (and at shutdown)
LATENCY_SAMPLE = 200  # recent fresh answers per model whose time to first token feeds `fastest` routing


@dataclass(slots=True)
class Services:
    ledger: Ledger | None
    reader: sqlite3.Connection | None  # reads only: receipts API, cache lookups
    cache_writer: Ledger | None
    cache_reader: sqlite3.Connection | None
    keys: KeyStore
    budgets: BudgetBook
    limiter: RateLimiter = field(default_factory=RateLimiter)
    flights: SingleFlight = field(default_factory=SingleFlight)
    latency_ms: dict[str, float] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)  # requests answered without a receipt, by code
    cache_tally: CacheTally = field(default_factory=CacheTally)
    metrics: Metrics = field(default_factory=lambda: Metrics(MetricsConfig()))

    def flush_cache_tally(self) -> None:
        op = self.cache_tally.take()
        if op is not None and self.cache_writer is not None:
            self.cache_writer.submit_op(op)

    def queue_cache_writes(self, state: RequestState, receipt: Receipt, cfg: CacheConfig) -> None:
        """After a receipt: tally a hit or a miss, and queue a complete fresh answer to be stored."""
        writer, plan, holds = self.cache_writer, state.decision.cache_plan, state.holds
        if writer is None or plan is None or not plan.active:
            return
        if holds.cache_hit is not None:
            saved = to_pusd(receipt.savings_usd) if receipt.savings_usd is not None else 0
            self.cache_tally.hit(holds.cache_hit.key, len(holds.cache_hit.body), saved)
            return
        if plan.decision.read and state.outcome.served_mode == "fresh":
            self.cache_tally.miss()
        if holds.cache_payload is not None and state.decision.target is not None:
            entry = entry_for(plan, state.decision.target, state, receipt, *holds.cache_payload)
            self.flush_cache_tally()  # recency first: eviction below must see the latest hits
            writer.submit_op(
                lambda c: store_and_evict(
                    c, entry, max_entries=cfg.max_entries, max_bytes=cfg.max_bytes, ttl_s=cfg.ttl_s
                )
            )


def observed_latency(conn: sqlite3.Connection) -> dict[str, float]:
    """Median time to first token per model over its most recent fresh, successful answers."""
    rows = conn.execute(
        "SELECT model, ttft_ms FROM (SELECT model, ttft_ms, ROW_NUMBER() OVER (PARTITION BY model ORDER BY seq DESC)"
        " AS n FROM receipts WHERE served_mode = 'fresh' AND status = 200 AND ttft_ms IS NOT NULL) WHERE n <= ?",
        (LATENCY_SAMPLE,),
    ).fetchall()
    samples: dict[str, list[float]] = {}
    for model, ttft in rows:
        samples.setdefault(model, []).append(ttft)
    return {model: statistics.median(values) for model, values in samples.items()}


async def _flush_cache_tally(services: Services, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        services.flush_cache_tally()


async def _refresh_latency(services: Services, interval_s: float) -> None:
    while True:
        if services.reader is not None:
            try:
                services.latency_ms.update(observed_latency(services.reader))
            except sqlite3.Error as exc:
                log.warning("could not read observed latency: %s", exc)
        await asyncio.sleep(interval_s)


def _same_file(a: str, b: str) -> bool:
    """`./nextmodel.db` and its absolute path are one file: it must get one writer, not two."""
    return Path(a).resolve() == Path(b).resolve()


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[Services]:
    """Open everything in order and close it in reverse; the ledger is flushed last of all."""
    ledger = reader = cache_writer = cache_reader = None
    services: Services | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        if config.ledger.enabled:
            ledger = Ledger(config.ledger.path, busy_timeout_s=config.ledger.busy_timeout_s)
            await ledger.start()
            reader = db.connect(config.ledger.path)
            cache_writer, cache_reader = ledger, reader
            if config.cache.path and not _same_file(config.cache.path, config.ledger.path):
                cache_writer = Ledger(config.cache.path, busy_timeout_s=config.ledger.busy_timeout_s)
                await cache_writer.start()
                cache_reader = db.connect(config.cache.path)
        keys = KeyStore.from_db(reader) if reader is not None else KeyStore()
        budgets = BudgetBook.load(reader, config) if reader is not None else BudgetBook(config.currency.rates)
        services = Services(
            ledger, reader, cache_writer, cache_reader, keys, budgets, metrics=Metrics(config.metrics)
        )
        # A non-stream leader publishes nothing until it finishes: followers wait as long as it may take.
        slowest = max((p.timeout_s for p in config.providers.values()), default=600.0)
        services.flights = SingleFlight(idle_timeout_s=slowest + 5.0)
        if reader is not None:
            tasks.append(asyncio.create_task(run_refresher(config.ledger.path, [keys, budgets])))
            services.latency_ms.update(observed_latency(reader))
            tasks.append(asyncio.create_task(_refresh_latency(services, LATENCY_REFRESH_S)))
            tasks.append(asyncio.create_task(_flush_cache_tally(services, CACHE_TALLY_FLUSH_S)))
        yield services
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if services is not None:
            services.flush_cache_tally()  # before the writer closes, so the last counts are kept
        if cache_writer is not None and cache_writer is not ledger:
            await cache_writer.close()
        if ledger is not None:
            await ledger.close()
        for conn in {id(c): c for c in (reader, cache_reader) if c is not None}.values():
            conn.close()
