"""Prometheus metrics: plain counters fed once per receipt on the request path, exposed at scrape time.

The hot path only adds to dicts and bucket arrays (no locks: everything runs on the event loop); the
prometheus-client library turns them into its text format when /metrics is scraped. Each labelled metric holds
at most `metrics.max_series` label sets; past that, new ones are counted under the label value "other", so a
typo'd model name cannot grow memory forever. The names are a contract (a test freezes them).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from nextmodel_proxy import __version__
from nextmodel_proxy.config import MetricsConfig
from nextmodel_proxy.ledger.receipts import Receipt

REQUEST_LABELS = ("endpoint", "model", "provider", "status_class", "served_mode")
_EXTRA_SOURCE = {"key": "key_id", "project": "project", "team": "team"}
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
OVERHEAD_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
TOKEN_TYPES = ("input", "cached_input", "cache_write", "output", "reasoning")
COST_KINDS = ("billed", "fresh", "upstream")
OTHER = "other"


class Histogram:
    """Cumulative-on-export bucket counts plus sum and count."""

    __slots__ = ("edges", "counts", "total", "count")

    def __init__(self, edges: Sequence[float]) -> None:
        self.edges = tuple(edges)
        self.counts = [0] * (len(self.edges) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.edges, value)] += 1
        self.total += value
        self.count += 1

    def buckets(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for edge, n in zip((*self.edges, float("inf")), self.counts, strict=True):
            running += n
            out.append(("+Inf" if edge == float("inf") else repr(edge), running))
        return out


class Capped:
    """Counts per label tuple, at most `limit` distinct tuples; later ones fold into (other, …)."""

    __slots__ = ("values", "limit")

    def __init__(self, limit: int) -> None:
        self.values: dict[tuple[str, ...], float] = {}
        self.limit = limit

    def add(self, labels: tuple[str, ...], amount: float = 1) -> None:
        values = self.values
        if labels not in values and len(values) >= self.limit:
            labels = tuple(OTHER for _ in labels)
        values[labels] = values.get(labels, 0) + amount


def _status_class(status: int | None) -> str:
    return "none" if not status else f"{status // 100}xx"


class Metrics:
    """Everything /metrics shows that the request path feeds; gauges are read at scrape time."""

    def __init__(self, config: MetricsConfig) -> None:
        self.extra = tuple(_EXTRA_SOURCE[name] for name in config.labels)
        self.label_names = (*REQUEST_LABELS, *config.labels)
        self.requests = Capped(config.max_series)
        self.request_duration = Histogram(SECONDS_BUCKETS)
        self.upstream_duration = Histogram(SECONDS_BUCKETS)
        self.ttft = Histogram(SECONDS_BUCKETS)
        self.overhead = Histogram(OVERHEAD_BUCKETS)
        self.tokens = dict.fromkeys(TOKEN_TYPES, 0)
        self.cost = dict.fromkeys(COST_KINDS, Decimal(0))
        self.cache_lookups = Capped(64)
        self.rejections = Capped(config.max_series)
        self.fallbacks = 0
        self.inflight = 0

    def observe(self, receipt: Receipt, before_upstream_s: float | None) -> None:
        """One finished request (its receipt). `before_upstream_s` is the time from arrival to the first
        upstream attempt: our overhead; the rest of the request is upstream time. Without an upstream call
        (a cache replay, a refusal) the whole request is overhead."""
        labels = (
            receipt.endpoint or "",
            receipt.model or "",
            receipt.provider or "",
            _status_class(receipt.status),
            receipt.served_mode,
        )
        if self.extra:
            labels += tuple(getattr(receipt, name) or "" for name in self.extra)
        self.requests.add(labels)
        if receipt.latency_ms is not None:
            total_s = receipt.latency_ms / 1000
            self.request_duration.observe(total_s)
            if before_upstream_s is None:
                self.overhead.observe(total_s)
            else:
                self.overhead.observe(before_upstream_s)
                self.upstream_duration.observe(max(total_s - before_upstream_s, 0.0))
        if receipt.stream and receipt.ttft_ms is not None:
            self.ttft.observe(receipt.ttft_ms / 1000)
        if receipt.served_mode == "fresh":  # replays cost no upstream tokens
            tokens = self.tokens
            tokens["input"] += receipt.prompt_tokens or 0
            tokens["cached_input"] += receipt.cached_tokens or 0
            tokens["cache_write"] += receipt.cache_write_tokens or 0
            tokens["output"] += receipt.completion_tokens or 0
            tokens["reasoning"] += receipt.reasoning_tokens or 0
        if receipt.billed_cost_usd is not None:
            cost = self.cost
            cost["billed"] += receipt.billed_cost_usd
            cost["fresh"] += receipt.fresh_cost_usd or 0
            cost["upstream"] += receipt.upstream_cost_usd or 0
        if receipt.cache_status:
            self.cache_lookups.add((receipt.cache_status,))
        if len({(a.get("provider"), a.get("model")) for a in receipt.attempts}) > 1:
            self.fallbacks += 1

    def rejected(self, code: str) -> None:
        self.rejections.add((code,))


class Collect(Collector):
    """Turns a Metrics (and the live gauges) into Prometheus families at scrape time."""

    def __init__(
        self,
        metrics: Metrics,
        queue_depth: Callable[[], int],
        write_errors: Callable[[], int],
        budgets: Callable[[], Iterable[tuple[str, str, Decimal]]],
    ) -> None:
        self.m = metrics
        self.queue_depth = queue_depth
        self.write_errors = write_errors
        self.budgets = budgets

    def collect(self) -> Iterator[Metric]:
        m = self.m
        yield _counter("nmproxy_requests_total", "Requests answered, by outcome.", m.label_names, m.requests)
        yield _histogram(
            "nmproxy_request_duration_seconds", "Whole request time as the client saw it.", m.request_duration
        )
        yield _histogram(
            "nmproxy_upstream_duration_seconds", "Time spent waiting on upstreams.", m.upstream_duration
        )
        yield _histogram("nmproxy_ttft_seconds", "Time to first byte of streamed answers.", m.ttft)
        yield _histogram(
            "nmproxy_overhead_seconds",
            "The proxy's own time before the first upstream call (all of a replay).",
            m.overhead,
        )
        tokens = CounterMetricFamily("nmproxy_tokens", "Tokens of fresh answers, by type.", labels=["type"])
        for kind, n in m.tokens.items():
            tokens.add_metric([kind], n)
        yield tokens
        cost = CounterMetricFamily(
            "nmproxy_cost_usd", "Cost in USD by kind (exact sums shown as floats).", labels=["kind"]
        )
        for kind, amount in m.cost.items():
            cost.add_metric([kind], float(amount))
        yield cost
        yield _counter(
            "nmproxy_cache_lookups_total", "Exact-cache lookups by result.", ("result",), m.cache_lookups
        )
        yield _counter(
            "nmproxy_rejections_total",
            "Requests refused without a receipt, by code.",
            ("code",),
            m.rejections,
        )
        fallbacks = CounterMetricFamily(
            "nmproxy_fallbacks", "Requests answered after moving to another candidate."
        )
        fallbacks.add_metric([], m.fallbacks)
        yield fallbacks
        yield _gauge("nmproxy_inflight_requests", "Requests being served now.", m.inflight)
        yield _gauge(
            "nmproxy_ledger_queue_depth", "Receipts waiting for the ledger writer.", self.queue_depth()
        )
        errors = CounterMetricFamily("nmproxy_ledger_write_errors", "Ledger write attempts that failed.")
        errors.add_metric([], self.write_errors())
        yield errors
        remaining = GaugeMetricFamily(
            "nmproxy_budget_remaining_usd",
            "Budget left in the current period, in USD.",
            labels=["scope", "name"],
        )
        for scope, name, usd in self.budgets():
            remaining.add_metric([scope, name], float(usd))
        yield remaining
        info = GaugeMetricFamily("nmproxy_build_info", "The running version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info


def _counter(name: str, doc: str, labels: Sequence[str], values: Capped) -> Metric:
    family = CounterMetricFamily(name.removesuffix("_total"), doc, labels=list(labels))
    for label_values, n in values.values.items():
        family.add_metric(list(label_values), n)
    return family


def _histogram(name: str, doc: str, h: Histogram) -> Metric:
    family = HistogramMetricFamily(name, doc)
    family.add_metric([], h.buckets(), h.total)
    return family


def _gauge(name: str, doc: str, value: Any) -> Metric:
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], value)
    return family
