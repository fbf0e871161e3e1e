"""Build the shipped CacheSafety trap file (deterministic: same script, same bytes).

    .venv/bin/python bench/build_cachesafety_data.py   # writes nextmodel_proxy/cachesafety/data/traps.jsonl

Every text below was written for this project (no third-party data); see the data README for the licence.
Each pair is two chat-completions bodies that differ only in the family's dimension, built on realistic
requests: a system prompt, sometimes earlier turns, sometimes tools, deterministic parameters (temperature 0
or a seed) so the exact cache would store them.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).parent))
import cachesafety_safe as safe  # noqa: E402
import cachesafety_traps as traps  # noqa: E402
from cachesafety_gen import Gen  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "nextmodel_proxy" / "cachesafety" / "data" / "traps.jsonl"
PER_FAMILY = 80
SEED = 20261206

TRAPS: dict[str, Callable[[Gen], tuple[Any, Any]]] = {
    "negation": traps.negation,
    "numbers": traps.numbers,
    "dates": traps.dates,
    "units": traps.units,
    "entity-swap": traps.entity_swap,
    "word-order": traps.word_order,
    "system-prompt": traps.system_prompt,
    "tools": traps.tools_family,
    "tool-choice": traps.tool_choice,
    "model": traps.model_family,
    "temperature": traps.temperature,
    "seed": traps.seed,
    "max-tokens": traps.max_tokens,
    "response-format": traps.response_format,
    "history": traps.history,
    "language": traps.language,
}
SAFE: dict[str, Callable[[Gen], tuple[Any, Any]]] = {
    "exact-repeat": safe.exact_repeat,
    "whitespace-case": safe.whitespace_case,
    "key-order": safe.key_order,
    "answer-neutral-fields": safe.neutral_fields,
    "history-irrelevant": safe.history_irrelevant,
}


def build() -> list[dict[str, Any]]:
    rows = []
    for families, same in ((TRAPS, False), (SAFE, True)):
        for family, make in families.items():
            g = Gen(random.Random(f"{SEED}:{family}"))
            for i in range(PER_FAMILY):
                a, b = make(g)
                rows.append(
                    {"id": f"{family}-{i + 1:03d}", "family": family, "same_answer": same, "a": a, "b": b}
                )
    return rows


def main() -> int:
    rows = build()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    print(f"wrote {len(rows)} pairs to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
