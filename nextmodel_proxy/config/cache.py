"""`cache:` section: the exact-answer cache (policy, scope, size limits, replay price)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from nextmodel_proxy.config.fields import (
    as_bool,
    as_choice,
    as_int,
    as_mapping,
    as_share,
    as_str,
    given,
    only_keys,
    parse_duration,
    unless_null,
)

CACHE_POLICIES = frozenset({"deterministic", "always", "never"})
CACHE_SCOPES = frozenset({"project", "key", "global"})


@dataclass(frozen=True, slots=True)
class CacheConfig:
    enabled: bool = True
    policy: str = "deterministic"
    scope: str = "project"
    replay_price_ratio: Decimal = Decimal("0.1")
    ttl_s: float = 7 * 86400.0
    max_entries: int = 100_000
    max_bytes: int = 1 << 30
    path: str | None = None
    allow_n_gt_1: bool = False


_CACHE_KEYS = {
    "replay_price_ratio": ("replay_price_ratio", as_share),
    "enabled": ("enabled", as_bool),
    "policy": ("policy", lambda v, p: as_choice(v, p, CACHE_POLICIES)),
    "scope": ("scope", lambda v, p: as_choice(v, p, CACHE_SCOPES)),
    "ttl": ("ttl_s", parse_duration),
    "max_entries": ("max_entries", lambda v, p: as_int(v, p, 1)),
    "max_bytes": ("max_bytes", lambda v, p: as_int(v, p, 1)),
    "path": ("path", unless_null(as_str)),
    "allow_n_gt_1": ("allow_n_gt_1", as_bool),
}


def read_cache(raw: Any) -> CacheConfig:
    m = as_mapping(raw, "cache")
    only_keys(m, "cache", _CACHE_KEYS)
    return CacheConfig(**given(m, "cache", _CACHE_KEYS))
