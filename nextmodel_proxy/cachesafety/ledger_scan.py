"""`--ledger`: the exact cache's realised hit rate and savings on the user's traffic, and what each looser
strategy would have hit ("unverified hits": no label says whether the answer would have been right).

What can be read: receipts (every request: served mode, cache status and key, model, project, tokens, exact
costs) and cache_entries (for each stored answer, the canonical request: every request field except the
delivery fields the key leaves out, with the resolved provider and upstream model and the scope).
What cannot: the body of a request whose answer is not in the cache file (not cacheable -- sampling without a
seed, bypassed, an error -- or since evicted, expired or purged), and for any request the bytes as sent (key
order, whitespace) and the left-out fields (stream, user, metadata...). So looser strategies are replayed over
the requests whose canonical form is in the cache file, in receipt order, matching within a scope; exact-body
cannot be measured (on canonical forms it would equal exact) and semantic is not run (it would send the
user's stored prompts to an embeddings model).
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from nextmodel_proxy import pricing
from nextmodel_proxy.cachesafety.strategies import (
    jaccard,
    last_user_text,
    normalized_key,
    prompt_text,
    text_of,
    trigrams,
)
from nextmodel_proxy.ledger import schema as db

NOT_READABLE = (
    "request bodies whose answers are not in the cache file (not cacheable, errors, evicted, expired, purged)",
    "the request bytes as sent and the fields the key leaves out (stream, user, metadata, store, ...)",
    "whether an unverified hit would have been a right answer (there is no label)",
)
MAX_CANDIDATES = 200  # earlier requests scored per request by the lexical strategies at most
ANSWER_FIELDS = ("model", "tools", "system", "parameters", "history", "prompt")


@dataclass(frozen=True, slots=True)
class Request:
    receipt_id: str
    key: str
    scope: str
    body: dict[str, Any]  # the canonical request with model = provider/upstream model
    fresh_pusd: int | None
    text: str
    shingles: frozenset[tuple[str, ...]]


def _split_messages(body: Mapping[str, Any]) -> tuple[list[Any], list[Any], str]:
    messages = [m for m in body.get("messages") or [] if isinstance(m, Mapping)]
    system = [m for m in messages if m.get("role") in ("system", "developer")]
    rest = [m for m in messages if m.get("role") not in ("system", "developer")]
    last = last_user_text(body) or ""
    history = rest[:-1] if rest and rest[-1].get("role") == "user" else rest
    return system, history, last


def _loose(text: str) -> str:
    """Case and whitespace folded, punctuation kept (3.5 and 35 stay apart)."""
    return " ".join(text.casefold().split())


def differences(x: Mapping[str, Any], y: Mapping[str, Any]) -> list[str]:
    """Which answer-relevant parts differ (empty: they differ only in the case or whitespace of text)."""
    out = []
    if x.get("model") != y.get("model"):
        out.append("model")
    if x.get("tools") != y.get("tools") or x.get("tool_choice") != y.get("tool_choice"):
        out.append("tools")
    sx, hx, lx = _split_messages(x)
    sy, hy, ly = _split_messages(y)
    if [_loose(text_of(m.get("content"))) for m in sx] != [_loose(text_of(m.get("content"))) for m in sy]:
        out.append("system")
    skip = {"model", "messages", "tools", "tool_choice"}
    if {k: v for k, v in x.items() if k not in skip} != {k: v for k, v in y.items() if k not in skip}:
        out.append("parameters")
    if [(m.get("role"), _loose(text_of(m.get("content")))) for m in hx] != [
        (m.get("role"), _loose(text_of(m.get("content")))) for m in hy
    ]:
        out.append("history")
    if _loose(lx) != _loose(ly):
        out.append("prompt")
    return out


def _requests(conn: sqlite3.Connection, cache_conn: sqlite3.Connection) -> tuple[list[Request], int]:
    """Fresh answers that missed the cache and whose canonical request is in the cache file, oldest first."""
    entries: dict[str, tuple[str, dict[str, Any]]] = {}
    for key, scope, canonical in cache_conn.execute(
        "SELECT key, scope, canonical FROM cache_entries WHERE endpoint = 'chat'"
    ):
        obj = orjson.loads(canonical)
        body = dict(obj.get("request") or {})
        body["model"] = f"{obj.get('provider')}/{obj.get('upstream_model')}"
        entries[key] = (scope, body)
    out, unknown = [], 0
    for receipt_id, key, fresh in conn.execute(
        "SELECT receipt_id, cache_key, fresh_cost_pusd FROM receipts WHERE cache_status = 'miss' "
        "AND served_mode = 'fresh' AND endpoint = 'chat' ORDER BY seq"
    ):
        entry = entries.get(key)
        if entry is None:
            unknown += 1
            continue
        scope, body = entry
        text = prompt_text(body)
        out.append(Request(receipt_id, key, scope, body, fresh, text, trigrams(text)))
    return out, unknown


def best_lexical(requests: list[Request], min_threshold: float) -> list[tuple[float, Request | None]]:
    """For each request, the earlier request of its scope (another key) with the highest trigram Jaccard,
    when that is >= min_threshold; (0.0, None) otherwise.

    Prefix filtering (exact, not sampled): with every shingle set sorted rarest first in one global order,
    two sets with Jaccard >= t share at least one shingle among the first |x| - ceil(t * |x|) + 1 of each.
    Only those prefixes are indexed and probed; candidates are then scored exactly. At most MAX_CANDIDATES
    (the most recent) are scored per request, so the time stays bounded on any ledger.
    """
    df: Counter[tuple[str, ...]] = Counter()
    for req in requests:
        df.update(req.shingles)
    index: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    out: list[tuple[float, Request | None]] = []
    for i, req in enumerate(requests):
        ordered = sorted(req.shingles, key=lambda sh: (df[sh], sh))
        prefix = ordered[: len(ordered) - math.ceil(min_threshold * len(ordered)) + 1]
        candidates: set[int] = set()
        for shingle in prefix:
            candidates.update(index.get((req.scope, shingle), ()))
        best, found = 0.0, None
        size = len(req.shingles)
        low, high = min_threshold * size, size / min_threshold if min_threshold else math.inf
        for j in sorted(candidates, reverse=True)[:MAX_CANDIDATES]:
            other = requests[j]
            if other.key == req.key or not low <= len(other.shingles) <= high:
                continue  # the same request, or sizes too far apart for the threshold
            score = jaccard(req.shingles, other.shingles)
            if score > best:
                best, found = score, other
                if score == 1.0:
                    break
        out.append((best, found) if best >= min_threshold else (0.0, None))
        for shingle in prefix:
            index.setdefault((req.scope, shingle), []).append(i)
    return out


Matcher = Callable[[list[Request]], list[tuple[Request, Request]]]


def _key_strategy(fn: Callable[[Mapping[str, Any]], Hashable | None]) -> Matcher:
    def run(requests: list[Request]) -> list[tuple[Request, Request]]:
        seen: dict[tuple[str, Hashable], Request] = {}
        hits = []
        for req in requests:
            k = fn(req.body)
            if k is None:
                continue
            earlier = seen.get((req.scope, k))
            if earlier is not None and earlier.key != req.key:
                hits.append((req, earlier))
            seen.setdefault((req.scope, k), req)
        return hits

    return run


def _lexical_strategy(threshold: float, best: list[tuple[float, Request | None]]) -> Matcher:
    def run(requests: list[Request]) -> list[tuple[Request, Request]]:
        return [(req, other) for req, (score, other) in zip(requests, best, strict=True)
                if other is not None and score >= threshold]  # fmt: skip

    return run


def scan(
    ledger_path: str, cache_path: str, *, lexical: tuple[float, ...], replay_ratio: Decimal, show: int = 0
) -> dict[str, Any]:
    """The whole `--ledger` result (JSON-ready); message contents only in `sample`, only when show > 0."""
    with contextlib.closing(db.connect(ledger_path, readonly=True)) as conn:
        row = conn.execute(
            "SELECT count(*), sum(cache_status IN ('hit', 'miss')), sum(served_mode = 'exact-cache'), "
            "coalesce(sum(CASE WHEN served_mode = 'exact-cache' THEN savings_pusd END), 0), "
            "sum(cache_status = 'bypass') FROM receipts"
        ).fetchone()
        total, looked_up, hits, saved, bypassed = (v or 0 for v in row)
        with contextlib.closing(db.connect(cache_path, readonly=True)) as cache_conn:
            try:
                requests, unknown = _requests(conn, cache_conn)
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
                requests, unknown = [], 0
    best = best_lexical(requests, min(lexical)) if lexical else []
    strategies: list[tuple[str, Matcher]] = [
        ("normalized", _key_strategy(normalized_key)),
        ("last-message", _key_strategy(last_user_text)),
        *((f"lexical@{t:g}", _lexical_strategy(t, best)) for t in lexical),
    ]
    results, samples = [], []
    for name, run in strategies:
        hits_found = run(requests)
        by_field: Counter[str] = Counter()
        neutral = changing = 0
        would_save = 0
        for req, earlier in hits_found:
            diff = differences(req.body, earlier.body)
            if diff:
                changing += 1
                by_field.update(diff)
            else:
                neutral += 1
            if req.fresh_pusd is not None:
                fresh = pricing.from_pusd(req.fresh_pusd)
                would_save += pricing.to_pusd(fresh - pricing.replay_billed(fresh, replay_ratio))
            samples.append((len(diff) + diff.count("prompt"), name, req, earlier, diff))
        results.append(
            {
                "name": name,
                "unverified_hits": len(hits_found),
                "answer_neutral": neutral,
                "answer_changing": changing,
                "differing_fields": {f: by_field[f] for f in ANSWER_FIELDS if by_field[f]},
                "usd_would_save": pricing.format_pusd(would_save),
            }
        )
    out: dict[str, Any] = {
        "ledger": ledger_path,
        "cache": cache_path,
        "receipts": total,
        "cache_lookups": looked_up,
        "exact_hits": hits,
        "realised_hit_rate": round(hits / looked_up, 4) if looked_up else None,
        "usd_saved": pricing.format_pusd(saved),
        "not_cacheable": bypassed,
        "misses_with_known_request": len(requests),
        "misses_without_request": unknown,
        "cannot_read": list(NOT_READABLE),
        "strategies": results,
    }
    if show > 0:
        samples.sort(key=lambda s: -s[0])
        out["sample"] = [
            {
                "strategy": name,
                "receipt": req.receipt_id,
                "would_replay_answer_of": earlier.receipt_id,
                "differs_in": diff or ["text case/whitespace only"],
                "request": _preview(req.body),
                "cached_request": _preview(earlier.body),
            }
            for _, name, req, earlier, diff in samples[:show]
        ]
    return out


def _preview(body: Mapping[str, Any]) -> dict[str, Any]:
    system, history, last = _split_messages(body)
    return {
        "model": body.get("model"),
        "system": " | ".join(text_of(m.get("content")) for m in system)[:300],
        "history_turns": len(history),
        "last_user_message": last[:300],
        "tools": [
            t.get("function", {}).get("name") for t in body.get("tools") or [] if isinstance(t, Mapping)
        ],
    }
