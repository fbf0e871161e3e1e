"""CacheSafety trap data: the safe families (same_answer true), one function a family (a, b)."""

from __future__ import annotations

import copy
from typing import Any

from cachesafety_gen import HISTORY, QUESTIONS, SYSTEMS, Gen  # noqa: E402


def exact_repeat(g: Gen) -> tuple[Any, Any]:
    a = g.body(g.pick(QUESTIONS))
    return a, copy.deepcopy(a)


def whitespace_case(g: Gen) -> tuple[Any, Any]:
    q = g.pick(QUESTIONS)
    variant = g.pick([q + "  ", "  " + q, q.replace(" ", "  ", 2), q[0].lower() + q[1:], q + "\n"])
    return g.text_pair(q, variant)


def _reorder(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reorder(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reorder(v) for v in value]
    return value


def key_order(g: Gen) -> tuple[Any, Any]:
    a = g.body(g.pick(QUESTIONS), tools=g.rng.random() < 0.6)
    return a, _reorder(a)


def neutral_fields(g: Gen) -> tuple[Any, Any]:
    a = g.body(g.pick(QUESTIONS))
    b = copy.deepcopy(a)
    change = g.pick(["user", "metadata", "stream", "float", "store"])
    if change == "user":
        b["user"] = f"user-{g.rng.randint(1, 999)}"
    elif change == "metadata":
        b["metadata"] = {"ticket": str(g.rng.randint(1000, 9999))}
    elif change == "stream":
        b["stream"] = True
    elif change == "float":
        a["top_p"], b["top_p"] = 1, 1.0
        b["temperature"] = float(a["temperature"])
    else:
        b["store"] = False
    return a, b


def history_irrelevant(g: Gen) -> tuple[Any, Any]:
    q = g.pick(QUESTIONS)
    system = g.pick(SYSTEMS)
    state = g.rng.getstate()
    a = g.body(q, system=system, history=False)
    g.rng.setstate(state)
    b = g.body(q, system=system, history=False)
    u, r = g.pick(HISTORY)
    b["messages"][1:1] = [{"role": "user", "content": u}, {"role": "assistant", "content": r}]
    return a, b
