"""`models:` section: each model's provider, upstream id, price, limits, capabilities and dates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from nextmodel_proxy.config.cache import CACHE_POLICIES
from nextmodel_proxy.config.fields import (
    ConfigError,
    as_choice,
    as_date,
    as_decimal,
    as_float,
    as_int,
    as_mapping,
    as_str,
    as_str_list,
    given,
    only_keys,
    unless_null,
)
from nextmodel_proxy.config.prices import PRICE_MODEL_KEYS, RATE_FIELDS, PriceModel, Rates, parse_price_model
from nextmodel_proxy.config.providers import ProviderConfig

CAPABILITIES = frozenset({"tools", "vision", "json_schema", "reasoning", "embeddings"})
MODEL_MODES = frozenset({"chat", "embedding"})
ENDPOINT_NAMES = frozenset({"chat", "responses", "messages", "embeddings", "completions"})
# The endpoints an upstream of each provider kind can serve natively (`endpoints:` may list only these).
NATIVE_BY_KIND = {
    "openai": frozenset({"chat", "responses", "embeddings", "completions"}),
    "anthropic": frozenset({"messages"}),
    "gemini": frozenset(),
    "demo": frozenset({"chat", "embeddings", "completions"}),
}


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens (for a model priced in another currency or by a schedule: the USD equivalent of the
    entry in force when the config was loaded, for routing and listings; receipts use `ModelConfig.pricing`)."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Latency:
    ttft_ms: float | None = None
    tokens_per_s: float | None = None


@dataclass(frozen=True, slots=True)
class ModelConfig:
    id: str
    provider: str
    upstream_id: str
    price: Price | None = None
    context_window: int | None = None
    max_output: int | None = None
    capabilities: frozenset[str] = frozenset()
    latency: Latency | None = None
    tags: tuple[str, ...] = ()
    source: str | None = None
    as_of: dt.date | None = None
    retires: dt.date | None = None
    mode: str | None = None  # "chat" or "embedding" restricts the model to that endpoint; None serves both
    cache_policy: str | None = None
    replacement: str | None = None  # model to suggest once this one retires
    verified: str | None = None  # research note on how solid the figures are
    notes: str | None = None
    endpoints: frozenset[str] | None = None  # served natively by the upstream; None: the kind's default
    pricing: PriceModel | None = None  # what receipts are priced by (config/prices.py)


_PRICE_KEYS = {
    "input": ("input", as_decimal),
    "output": ("output", as_decimal),
    "cached_input": ("cached_input", unless_null(as_decimal)),
    "cache_write": ("cache_write", unless_null(as_decimal)),
    "cache_write_1h": ("cache_write_1h", unless_null(as_decimal)),
}

_LATENCY_KEYS = {
    "ttft_ms": ("ttft_ms", as_float),
    "tokens_per_s": ("tokens_per_s", as_float),
}


def _positive_or_unset(value: Any, path: str) -> int | None:
    """0 or null means 'not stated'; otherwise an integer >= 1."""
    return as_int(value, path, 1) if value else None


def _read_price(raw: Any, path: str) -> Price:
    m = as_mapping(raw, path)
    only_keys(m, path, _PRICE_KEYS)
    for required in ("input", "output"):
        if required not in m:
            raise ConfigError(f"{path}.{required}", "is required")
    return Price(**given(m, path, _PRICE_KEYS))


def _read_latency(raw: Any, path: str) -> Latency:
    m = as_mapping(raw, path)
    only_keys(m, path, _LATENCY_KEYS)
    return Latency(**given(m, path, _LATENCY_KEYS))


_MODEL_KEYS = {
    "upstream_id": ("upstream_id", as_str),
    "price": ("price", unless_null(_read_price)),
    "context_window": ("context_window", _positive_or_unset),
    "max_output": ("max_output", _positive_or_unset),
    "capabilities": ("capabilities", lambda v, p: frozenset(as_str_list(v, p, CAPABILITIES))),
    "latency": ("latency", unless_null(_read_latency)),
    "source": ("source", unless_null(as_str)),
    "as_of": ("as_of", unless_null(as_date)),
    "retires": ("retires", unless_null(as_date)),
    "mode": ("mode", lambda v, p: as_choice(v, p, MODEL_MODES)),
    "cache_policy": ("cache_policy", unless_null(lambda v, p: as_choice(v, p, CACHE_POLICIES))),
    "replacement": ("replacement", unless_null(as_str)),
    "verified": ("verified", unless_null(as_str)),
    "notes": ("notes", unless_null(as_str)),
    "endpoints": ("endpoints", unless_null(lambda v, p: frozenset(as_str_list(v, p, ENDPOINT_NAMES)))),
}
# Allowed keys under models.<id>: the fields above plus the ones read by hand (the price model's included).
MODEL_KEYS = frozenset(_MODEL_KEYS) | {"provider", "tags"} | PRICE_MODEL_KEYS


def read_model(name: str, raw: Any, providers: Mapping[str, ProviderConfig]) -> ModelConfig:
    path = f"models.{name}"
    m = as_mapping(raw, path)
    only_keys(m, path, MODEL_KEYS)
    if "provider" not in m:
        raise ConfigError(f"{path}.provider", "is required")
    provider = as_str(m["provider"], f"{path}.provider")
    if provider not in providers:
        raise ConfigError(f"{path}.provider", f"unknown provider {provider!r} (not under providers:)")
    tags = as_str_list(m.get("tags", []), f"{path}.tags")
    fields = given(m, path, _MODEL_KEYS)
    kind = providers[provider].kind
    extra = sorted(fields.get("endpoints", frozenset()) - NATIVE_BY_KIND.get(kind, ENDPOINT_NAMES))
    if extra:
        raise ConfigError(
            f"{path}.endpoints",
            f"a kind: {kind} upstream cannot serve {', '.join(extra)} natively "
            f"(allowed: {', '.join(sorted(NATIVE_BY_KIND.get(kind, ()))) or 'none'}); "
            "the proxy translates the other endpoints itself",
        )
    fields.setdefault("upstream_id", name)  # the upstream knows the model by our id unless told otherwise
    price = fields.get("price")
    simple = Rates(**{n: getattr(price, n) for n in RATE_FIELDS}) if price is not None else None
    fields["pricing"] = parse_price_model(m, path, simple)
    return ModelConfig(
        id=name, provider=provider, tags=tuple(dict.fromkeys(tags + providers[provider].tags)), **fields
    )
