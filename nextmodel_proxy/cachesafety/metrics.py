"""Score each strategy on labelled pairs: hits, safe and bad hits, rates, precision, per family, savings.

Definition (pairwise, as the contract's pair implies): for each pair the cache holds exactly `a`'s answer and
`b` arrives; a strategy "hits" when its rule matches `b` to `a`. Pairs are independent, so the scoring is
O(pairs) for every strategy. A hit is safe when `same_answer` is true and bad when it is false.

Savings of a hit: `b`'s fresh cost minus what a replay bills (fresh x cache.replay_price_ratio), priced with
the config's price for `b`'s model like receipts are (pricing.receipt_costs); prompt tokens are estimated
from the body (estimate.estimate_tokens), completion tokens are `b`'s max_tokens when set below
ASSUMED_COMPLETION_TOKENS, else that figure (the bench has no real answers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from nextmodel_proxy import estimate, pricing, usage
from nextmodel_proxy.cachesafety.dataset import Pair
from nextmodel_proxy.cachesafety.strategies import Strategy, jaccard, prompt_text, trigrams
from nextmodel_proxy.config import Config

ASSUMED_COMPLETION_TOKENS = 200
DEFAULT_REPLAY_RATIO = Decimal("0.1")  # CacheConfig's default, used without a config

METRIC_HELP = {
    "hits": "pairs where the strategy would replay a's answer for b",
    "safe_hits": "hits on pairs labelled same_answer=true (the replay is a right answer)",
    "bad_hits": "hits on pairs labelled same_answer=false (a wrong answer served)",
    "safe_hit_rate": "safe hits / all pairs",
    "safe_recall": "safe hits / pairs labelled same_answer=true (share of reusable answers reused)",
    "bad_hit_rate": "bad hits / all pairs",
    "bad_hit_rate_must_miss": "bad hits / pairs labelled same_answer=false (trap failure rate)",
    "precision": "safe hits / hits (n/a with no hits)",
    "tokens_saved": "estimated prompt + completion tokens not sent upstream, over all hits",
    "usd_saved": "fresh cost minus replay price over all hits, priced from the catalog (bad hits included)",
    "usd_saved_safe": "the same over safe hits only",
    "families": "per trap family: pairs, hits, bad hits",
}


def completion_tokens(body: Mapping[str, Any]) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < ASSUMED_COMPLETION_TOKENS:
            return value
    return ASSUMED_COMPLETION_TOKENS


def saving_of(body: Mapping[str, Any], config: Config | None) -> tuple[int, Decimal | None]:
    """(tokens, USD saved) if `body` were replayed instead of answered fresh; USD None when unpriced."""
    used = usage.Usage(estimate.estimate_tokens(body.get("messages")), completion_tokens(body))
    name = body.get("model")
    model = config.models.get(name) if config is not None and isinstance(name, str) else None
    if model is None or model.price is None:
        return used.total_tokens, None
    ratio = config.cache.replay_price_ratio if config is not None else DEFAULT_REPLAY_RATIO
    costs = pricing.receipt_costs("exact-cache", used, model.price, replay_ratio=ratio, model=model.id)
    return used.total_tokens, costs.savings


def cosine(x: Sequence[float], y: Sequence[float]) -> float:
    dot = sum(a * b for a, b in zip(x, y, strict=False))
    nx = math.sqrt(sum(a * a for a in x))
    ny = math.sqrt(sum(b * b for b in y))
    return dot / (nx * ny) if nx and ny else 0.0


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def _usd(amount: Decimal) -> str:
    return pricing.format_usd(amount)


def matches(
    strategy: Strategy,
    pairs: Sequence[Pair],
    embeddings: Mapping[str, Sequence[float]] | None = None,
    memo: dict[str, list[float]] | None = None,
) -> list[bool]:
    """Whether the strategy hits, pair by pair."""
    if strategy.kind == "key":
        assert strategy.key is not None
        out = []
        for p in pairs:
            ka = strategy.key(p.a)
            out.append(ka is not None and ka == strategy.key(p.b))
        return out
    threshold = strategy.threshold or 0.0
    memo = memo if memo is not None else {}
    if strategy.kind not in memo:
        memo[strategy.kind] = similarities(strategy.kind, pairs, embeddings)
    return [s >= threshold for s in memo[strategy.kind]]


def similarities(
    kind: str, pairs: Sequence[Pair], embeddings: Mapping[str, Sequence[float]] | None = None
) -> list[float]:
    """Lexical or semantic similarity of each pair's two prompts."""
    if kind == "lexical":
        return [jaccard(trigrams(prompt_text(p.a)), trigrams(prompt_text(p.b))) for p in pairs]
    assert embeddings is not None
    return [cosine(embeddings[prompt_text(p.a)], embeddings[prompt_text(p.b)]) for p in pairs]


def score(
    strategies: Sequence[Strategy],
    pairs: Sequence[Pair],
    config: Config | None,
    *,
    embeddings: Mapping[str, Sequence[float]] | None = None,
    semantic_skipped: str | None = None,
) -> dict[str, Any]:
    """The whole result: dataset summary and one entry per strategy (JSON-ready)."""
    must_miss = sum(1 for p in pairs if not p.same_answer)
    families: dict[str, dict[str, Any]] = {}
    for p in pairs:
        fam = families.setdefault(p.family, {"pairs": 0, "must_miss": 0})
        fam["pairs"] += 1
        fam["must_miss"] += 0 if p.same_answer else 1
    savings: list[tuple[int, Decimal | None] | None] = [None] * len(pairs)
    memo: dict[str, list[float]] = {}
    results = []
    for strategy in strategies:
        entry: dict[str, Any] = {"name": strategy.name, "description": strategy.description}
        if strategy.kind == "semantic" and (semantic_skipped or embeddings is None):
            entry["skipped"] = semantic_skipped or "no embeddings"
            results.append(entry)
            continue
        hit_list = matches(strategy, pairs, embeddings, memo)
        hits = safe = bad = tokens = unpriced = 0
        usd = usd_safe = Decimal(0)
        per_family = {f: {"pairs": v["pairs"], "hits": 0, "bad_hits": 0} for f, v in families.items()}
        for i, (p, hit) in enumerate(zip(pairs, hit_list, strict=True)):
            if not hit:
                continue
            hits += 1
            per_family[p.family]["hits"] += 1
            if p.same_answer:
                safe += 1
            else:
                bad += 1
                per_family[p.family]["bad_hits"] += 1
            if savings[i] is None:
                savings[i] = saving_of(p.b, config)
            t, money = savings[i]  # type: ignore[misc]
            tokens += t
            if money is None:
                unpriced += 1
            else:
                usd += money
                usd_safe += money if p.same_answer else 0
        n = len(pairs)
        entry.update(
            hits=hits,
            safe_hits=safe,
            bad_hits=bad,
            safe_hit_rate=_rate(safe, n),
            safe_recall=_rate(safe, n - must_miss),
            bad_hit_rate=_rate(bad, n),
            bad_hit_rate_must_miss=_rate(bad, must_miss),
            precision=_rate(safe, hits),
            tokens_saved=tokens,
            usd_saved=_usd(usd),
            usd_saved_safe=_usd(usd_safe),
            unpriced_hits=unpriced,
            families=per_family,
        )
        results.append(entry)
    return {
        "pairs": len(pairs),
        "must_miss": must_miss,
        "same_answer": len(pairs) - must_miss,
        "families": families,
        "replay_price_ratio": str(config.cache.replay_price_ratio if config else DEFAULT_REPLAY_RATIO),
        "strategies": results,
    }
