"""The exact cache's key and policy (pure): canonical request encoding, XXH3-128 key, cacheability decision.

What the key covers (so no field is silently left out, tensorzero-style): a versioned JSON object of named
fields -- the scope, the resolved provider, the resolved upstream model, the endpoint, and every request
field except the ones below, which cannot change the answer:

- `model`: replaced by the resolved provider + upstream model, so aliases of one upstream model share entries.
- `stream`, `stream_options`: how the answer is delivered; stored answers are converted (replay.py).
- `user`, `safety_identifier`: end-user ids for the provider's abuse monitoring.
- `metadata`, `store`: whether/how the provider keeps a copy for its dashboards and distillation.
- `prompt_cache_key`: a routing hint for the provider's prompt cache; it changes cost, not the answer.

Everything else counts, including fields we do not know (an unknown field is assumed to change the answer),
and `service_tier` (the response names the tier and its price differs, so a flex answer is not a default one).

Normalisation is deliberately minimal: key order and JSON whitespace do not matter (keys sorted recursively,
compact encoding); strings are compared exactly (case, whitespace, unicode form); defaults are not filled in
(`n: 1` and no `n` are different keys). The one numeric rule: a float with an integral value is encoded as
the integer, so `temperature: 0` and `temperature: 0.0` (and a schema's `minimum: 1` vs `1.0`) hit the same
entry -- JSON does not distinguish them and no provider answers them differently. `true` is never `1`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import xxhash

from nextmodel_proxy.config import CacheConfig
from nextmodel_proxy.errors import ProxyError

CANONICAL_VERSION = "nmcache/1"
EXCLUDED_FIELDS = frozenset(
    {
        "model",
        "stream",
        "stream_options",
        "user",
        "safety_identifier",
        "metadata",
        "store",
        "prompt_cache_key",
    }
)
# Responses, Messages and completions answers are replayed byte for byte, never converted between stream and
# non-stream forms, so for them `stream` is part of the key (the endpoint always is).
_EXCLUDED_KEEP_STREAM = EXCLUDED_FIELDS - {"stream"}
HEADER = "x-nextmodel-cache"
HEADER_MODES = frozenset({"skip", "refresh", "only"})
_EXACT_INT_LIMIT = 2**53  # beyond this a float no longer stands for one integer


def _normalise(value: Any) -> Any:
    """Integral floats -> ints, recursively; returns the same object when nothing changes (no copies)."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < _EXACT_INT_LIMIT:
            return int(value)
        return value
    if isinstance(value, dict):
        out = None
        for k, v in value.items():
            nv = _normalise(v)
            if nv is not v:
                out = out if out is not None else dict(value)
                out[k] = nv
        return value if out is None else out
    if isinstance(value, list):
        out_list = None
        for i, v in enumerate(value):
            nv = _normalise(v)
            if nv is not v:
                out_list = out_list if out_list is not None else list(value)
                out_list[i] = nv
        return value if out_list is None else out_list
    return value


def _canonical_object(
    body: Mapping[str, Any], *, scope: str, provider: str, upstream_model: str, endpoint: str
) -> dict[str, Any]:
    excluded = EXCLUDED_FIELDS if endpoint in ("chat", "embeddings") else _EXCLUDED_KEEP_STREAM
    request = {k: _normalise(v) for k, v in body.items() if k not in excluded}
    return {
        "v": CANONICAL_VERSION,
        "scope": scope,
        "provider": provider,
        "upstream_model": upstream_model,
        "endpoint": endpoint,
        "request": request,
    }


def canonical_request(
    body: Mapping[str, Any], *, scope: str, provider: str, upstream_model: str, endpoint: str
) -> bytes:
    """The exact bytes the key is the hash of, and which a hit must equal byte for byte."""
    obj = _canonical_object(
        body, scope=scope, provider=provider, upstream_model=upstream_model, endpoint=endpoint
    )
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def cache_key(canonical: bytes) -> str:
    """XXH3-128 of the canonical request, 32 hex digits."""
    return xxhash.xxh3_128_hexdigest(canonical)


def explain(
    body: Mapping[str, Any], *, scope: str, provider: str, upstream_model: str, endpoint: str
) -> dict[str, Any]:
    """What `nmproxy cache explain` prints: the canonical form (pretty), the key, and the fields left out."""
    canonical = canonical_request(
        body, scope=scope, provider=provider, upstream_model=upstream_model, endpoint=endpoint
    )
    pretty = orjson.dumps(orjson.loads(canonical), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    return {
        "key": cache_key(canonical),
        "canonical": pretty.decode(),
        "excluded": sorted(k for k in body if k in EXCLUDED_FIELDS),
        "canonical_bytes": len(canonical),
    }


def scope_for(scope_mode: str, *, project: str | None, key_id: str | None) -> str:
    """The scope string of a request: one tenant never shares entries with another unless `global`."""
    if scope_mode == "global":
        return "global"
    if scope_mode == "key" and key_id:
        return f"key:{key_id}"
    # Per-key without keys configured falls back to the attribution project, never to a shared pool.
    return f"project:{project or ''}"


# --- policy ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CacheDecision:
    """Whether to read and/or write the cache for one request, and why not when it does not."""

    read: bool
    write: bool
    mode: str  # 'normal' | 'skip' | 'refresh' | 'only'
    reason: str | None  # for x-nextmodel-cache-reason when the request is not cached

    @property
    def upstream_allowed(self) -> bool:
        """False for `only`: a miss is answered 504 cache_miss, never sent upstream."""
        return self.mode != "only"


def header_mode(value: str | None) -> str:
    """The x-nextmodel-cache header as a mode; anything but skip|refresh|only is a 400."""
    if value is None or not value.strip():
        return "normal"
    mode = value.strip().lower()
    if mode not in HEADER_MODES:
        raise ProxyError(
            400,
            f"{HEADER} must be one of skip, refresh, only (got {value.strip()!r})",
            "invalid_value",
            param=HEADER,
        )
    return mode


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _not_cacheable_reason(
    body: Mapping[str, Any], policy: str, cache_cfg: CacheConfig, endpoint: str
) -> str | None:
    if policy == "never":
        return "policy-never"
    if endpoint == "embeddings":
        return None  # an embedding is a function of its input
    temperature = _number(body.get("temperature"))
    sampling = temperature != 0.0  # absent temperature means the provider default (1): sampling
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n > 1 and sampling and not cache_cfg.allow_n_gt_1:
        return "n>1"
    if policy == "always":
        return None
    if not sampling or body.get("seed") is not None:
        return None
    return "nondeterministic"


def decide(
    body: Mapping[str, Any],
    headers_value: str | None,
    cache_cfg: CacheConfig,
    model_policy: str | None,
    *,
    endpoint: str = "chat",
) -> CacheDecision:
    """Read/write decision from the config policy, the model's cache_policy, the body and the header."""
    mode = header_mode(headers_value)
    if not cache_cfg.enabled:
        return CacheDecision(False, False, mode, "disabled")
    if mode == "skip":
        return CacheDecision(False, False, mode, "skip")
    reason = _not_cacheable_reason(body, model_policy or cache_cfg.policy, cache_cfg, endpoint)
    if reason is not None:
        return CacheDecision(False, False, mode, reason)
    if mode == "refresh":
        return CacheDecision(False, True, mode, None)
    # `only` still writes nothing: it never reaches the upstream, so there is nothing new to store.
    return CacheDecision(True, mode == "normal", mode, None)
