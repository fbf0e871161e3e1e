"""Cache-hit microbenchmark: verified lookups per second on one core against a real SQLite file.

Usage (from the repository root): python -m bench.cache_bench [--entries 10000] [--seconds 2] [--body-bytes 1500]
Measures (1) `cache.lookup` alone (primary-key read + canonical compare + body checksum) and
(2) the whole hit computation the proxy does per request: canonical encoding, XXH3 key, lookup.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from nextmodel_proxy.cache import store as cache
from nextmodel_proxy.cache.key import cache_key, canonical_request
from nextmodel_proxy.ledger import schema as db

TARGET = {"scope": "project:bench", "provider": "openai", "upstream_model": "gpt-4o-mini", "endpoint": "chat"}


def body_for(i: int) -> dict:
    return {
        "model": "fast",
        "temperature": 0,
        "max_tokens": 200,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
            {"role": "user", "content": f"Question number {i}: what is the capital of country {i}?"},
        ],
    }


def fill(path: Path, entries: int, body_bytes: int) -> None:
    conn = db.open_db(path)
    answer = (
        b'{"id":"chatcmpl-x","object":"chat.completion","choices":[{"message":{"content":"'
        + (b"x" * body_bytes)
        + b'"}}]}'
    )
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    for i in range(entries):
        canonical = canonical_request(body_for(i), **TARGET)
        cache.store(
            conn,
            cache.CacheEntry(
                key=cache_key(canonical),
                scope=TARGET["scope"],
                provider="openai",
                model="gpt-4o-mini",
                endpoint="chat",
                canonical=canonical,
                response_kind="json",
                body=answer,
                usage={"prompt_tokens": 30, "completion_tokens": 10},
                fresh_receipt_id=f"rcpt_{i}",
                fresh_cost_pusd=1000,
                created_at=now,
            ),
        )
    conn.execute("COMMIT")
    conn.close()


def measure(label: str, fn, seconds: float) -> dict:
    """Run fn() repeatedly for about `seconds`; print rate and per-call percentiles."""
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    rate = len(samples) / sum(samples)
    q = statistics.quantiles(samples, n=100)
    print(f"{label:<44} {rate:>10,.0f}/s   p50 {q[49] * 1e6:6.1f} us   p99 {q[98] * 1e6:6.1f} us")
    return {"per_s": round(rate), "p50_us": round(q[49] * 1e6, 1), "p99_us": round(q[98] * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--body-bytes", type=int, default=1500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        fill(path, args.entries, args.body_bytes)
        reader = db.connect(path, readonly=True)
        rng = random.Random(7)
        bodies = [body_for(rng.randrange(args.entries)) for _ in range(1000)]
        prepared = [(cache_key(c), c) for c in (canonical_request(b, **TARGET) for b in bodies)]
        now, pick = time.time(), iter(range(10**12))

        def lookup_only() -> None:
            key, canonical = prepared[next(pick) % len(prepared)]
            assert cache.lookup(reader, key, canonical, now=now, ttl_s=86400) is not None

        def full_hit() -> None:
            canonical = canonical_request(bodies[next(pick) % len(bodies)], **TARGET)
            assert cache.lookup(reader, cache_key(canonical), canonical, now=now, ttl_s=86400) is not None

        print(f"{args.entries} entries, {args.body_bytes}-byte answers, file {path.stat().st_size:,} bytes")
        result = {
            "bench": "cache",
            "entries": args.entries,
            "lookup": measure("lookup (point read + verify)", lookup_only, args.seconds),
            "hit": measure("canonical + key + lookup (per-request hit)", full_hit, args.seconds),
        }
        reader.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
