"""`routes:` section: named groups of candidate models and the strategy that picks among them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from nextmodel_proxy.config.fields import (
    ConfigError,
    as_choice,
    as_decimal,
    as_float,
    as_mapping,
    as_str,
    as_str_list,
    given,
    only_keys,
)
from nextmodel_proxy.config.models import CAPABILITIES, ModelConfig

ROUTE_STRATEGIES = frozenset({"fallback", "cheapest", "fastest", "weighted"})


@dataclass(frozen=True, slots=True)
class Candidate:
    model: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class RouteConfig:
    name: str
    candidates: tuple[Candidate, ...]
    strategy: str = "fallback"
    require: frozenset[str] = frozenset()
    tags: tuple[str, ...] = ()
    max_price: Mapping[str, Decimal] = field(default_factory=dict)


_ROUTE_KEYS = frozenset({"strategy", "candidates", "require", "tags", "max_price"})
_CANDIDATE_KEYS = {"model": ("model", as_str), "weight": ("weight", as_float)}


def _read_candidate(item: Any, path: str, models: Mapping[str, ModelConfig]) -> Candidate:
    if isinstance(item, Mapping):
        only_keys(item, path, _CANDIDATE_KEYS)
        if "model" not in item:
            as_str(None, f"{path}.model")  # the same "must be a non-empty string" as a bad value
        cand = Candidate(**given(item, path, _CANDIDATE_KEYS))
    else:
        cand = Candidate(as_str(item, path))
    if cand.model not in models:
        raise ConfigError(path, f"unknown model {cand.model!r}")
    return cand


def read_route(name: str, raw: Any, models: Mapping[str, ModelConfig]) -> RouteConfig:
    path = f"routes.{name}"
    m = as_mapping(raw, path)
    only_keys(m, path, _ROUTE_KEYS)
    if name in models:
        raise ConfigError(path, f"a route cannot share its name with model {name!r}")
    strategy = (
        {"strategy": as_choice(m["strategy"], f"{path}.strategy", ROUTE_STRATEGIES)}
        if "strategy" in m
        else {}
    )
    raw_candidates = m.get("candidates")
    if not isinstance(raw_candidates, list) or not raw_candidates:
        raise ConfigError(f"{path}.candidates", "must be a non-empty list of model ids")
    candidates = tuple(
        _read_candidate(item, f"{path}.candidates.{i}", models) for i, item in enumerate(raw_candidates)
    )
    max_price_raw = as_mapping(m.get("max_price"), f"{path}.max_price")
    only_keys(max_price_raw, f"{path}.max_price", {"input", "output"})
    return RouteConfig(
        name=name,
        candidates=candidates,
        require=frozenset(as_str_list(m.get("require", []), f"{path}.require", CAPABILITIES)),
        tags=as_str_list(m.get("tags", []), f"{path}.tags"),
        max_price=MappingProxyType(
            {k: as_decimal(v, f"{path}.max_price.{k}") for k, v in max_price_raw.items()}
        ),
        **strategy,
    )
