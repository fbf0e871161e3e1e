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
import sqlite3
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from nextmodel_proxy import pricing
from nextmodel_proxy.cachesafety.strategies import (
    fold,
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
MAX_POSTING = 2000  # a trigram shared by more cached requests than this is too common to find candidates by
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


def differences(x: Mapping[str, Any], y: Mapping[str, Any]) -> list[str]:
    """Which answer-relevant parts differ (empty: they differ only in case/whitespace/punctuation of text)."""
    out = []
    if x.get("model") != y.get("model"):
        out.append("model")
    if x.get("tools") != y.get("tools") or x.get("tool_choice") != y.get("tool_choice"):
        out.append("tools")
    sx, hx, lx = _split_messages(x)
    sy, hy, ly = _split_messages(y)
    if [fold(text_of(m.get("content"))) for m in sx] != [fold(text_of(m.get("content"))) for m in sy]:
        out.append("system")
    skip = {"model", "messages", "tools", "tool_choice"}
    if {k: v for k, v in x.items() if k not in skip} != {k: v for k, v in y.items() if k not in skip}:
        out.append("parameters")
    if [(m.get("role"), fold(text_of(m.get("content")))) for m in hx] != [
        (m.get("role"), fold(text_of(m.get("content")))) for m in hy
    ]:
        out.append("history")
    if fold(lx) != fold(ly):
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


class _LexicalIndex:
    """Earlier requests by trigram, so a new one is compared only with those sharing a trigram."""

    def __init__(self) -> None:
        self.items: list[Request] = []
        self.postings: dict[tuple[str, ...], list[int]] = {}

    def best(self, req: Request) -> tuple[float, Request | None]:
        counts: Counter[int] = Counter()
        for shingle in req.shingles:
            posting = self.postings.get(shingle)
            if posting and len(posting) <= MAX_POSTING:
                counts.update(posting)
        best, found = 0.0, None
        for i, _ in counts.most_common(50):
            other = self.items[i]
            if other.scope != req.scope or other.key == req.key:
                continue
            score = jaccard(req.shingles, other.shingles)
            if score > best:
                best, found = score, other
        return best, found

    def add(self, req: Request) -> None:
        self.items.append(req)
        for shingle in req.shingles:
            self.postings.setdefault(shingle, []).append(len(self.items) - 1)


def _key_strategy(
    fn: Callable[[Mapping[str, Any]], Hashable | None],
) -> Callable[[list[Request]], list[tuple[Request, Request]]]:
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


def _lexical_strategy(threshold: float) -> Callable[[list[Request]], list[tuple[Request, Request]]]:
    def run(requests: list[Request]) -> list[tuple[Request, Request]]:
        index, hits = _LexicalIndex(), []
        for req in requests:
            score, other = index.best(req)
            if other is not None and score >= threshold:
                hits.append((req, other))
            index.add(req)
        return hits

    return run


def _usd(pusd: int) -> str:
    return pricing.format_usd(pricing.from_pusd(pusd))


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
    strategies: list[tuple[str, Callable[[list[Request]], list[tuple[Request, Request]]]]] = [
        ("normalized", _key_strategy(normalized_key)),
        ("last-message", _key_strategy(last_user_text)),
        *((f"lexical@{t:g}", _lexical_strategy(t)) for t in lexical),
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
                "usd_would_save": _usd(would_save),
            }
        )
    out: dict[str, Any] = {
        "ledger": ledger_path,
        "cache": cache_path,
        "receipts": total,
        "cache_lookups": looked_up,
        "exact_hits": hits,
        "realised_hit_rate": round(hits / looked_up, 4) if looked_up else None,
        "usd_saved": _usd(saved),
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
                "differs_in": diff or ["text case/whitespace/punctuation only"],
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
