"""Price resolution per request (schedule -> tier -> window -> service tier) and the native cost on it.

    python bench/price_bench.py [--n 200000]

Uses the shipped catalog's richest entries (argon's schedule, gpt-6.2-sol's tier + service tiers + 12-hour
writes, deepseek-flash's windows, a CNY Doubao tier) at request times and prompt sizes spread over the edges.
Prints one JSON line: microseconds per resolve, and per resolve + native cost + USD conversion."""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nextmodel_proxy.config import load_config  # noqa: E402
from nextmodel_proxy.price_resolve import resolve  # noqa: E402
from nextmodel_proxy.pricing import native_cost, to_usd  # noqa: E402
from nextmodel_proxy.usage import Usage  # noqa: E402

MODELS = [
    "gemini-4-argon",
    "gpt-6.2-sol",
    "deepseek-flash",
    "doubao-seed-2-0-mini-260215",
    "claude-haiku-5-5",
]
TIERS = [None, "default", "priority", "flex"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    config = load_config(Path(__file__).resolve().parents[1] / "providers.yaml")
    rng = random.Random(7)
    start = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
    cases = []
    for _ in range(4096):
        model = config.models[rng.choice(MODELS)]
        at = start + dt.timedelta(seconds=rng.randrange(0, 7 * 86400))
        prompt = rng.choice([1_000, 31_999, 32_001, 99_999, 100_001, 271_999, 272_001, 500_000])
        usage = Usage(prompt, rng.randrange(1, 4000), cached_tokens=prompt // 4)
        cases.append((model, at, usage, rng.choice(TIERS)))
    fx = config.fx
    # warm: every distinct resolution is built once (as a running proxy would after its first requests)
    for model, at, usage, tier in cases:
        resolve(
            model.id, model.pricing, at, usage.prompt_tokens, tier, source=model.source, as_of=model.as_of
        )
    n = args.n
    t0 = time.perf_counter()
    for i in range(n):
        model, at, usage, tier = cases[i & 4095]
        resolve(
            model.id, model.pricing, at, usage.prompt_tokens, tier, source=model.source, as_of=model.as_of
        )
    resolve_us = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for i in range(n):
        model, at, usage, tier = cases[i & 4095]
        price = resolve(
            model.id, model.pricing, at, usage.prompt_tokens, tier, source=model.source, as_of=model.as_of
        )
        rate = fx.rate(price.currency, at.date())
        to_usd(native_cost(usage, price), rate[0] if rate else Decimal(1))
    full_us = (time.perf_counter() - t0) / n * 1e6
    print(
        orjson.dumps(
            {
                "bench": "price_resolution",
                "calls": n,
                "resolve_us_per_request": round(resolve_us, 2),
                "resolve_cost_fx_us_per_request": round(full_us, 2),
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
