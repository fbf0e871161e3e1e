"""Issue 10 (A): upstream usage goes through one sanitizer. Hostile figures are estimated with a reason, never
trusted, never a silent 0, never an overflow of the ledger's 64-bit columns; /healthz stays 200."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from ledger_helpers import healthz, receipt_of

from nextmodel_proxy import pricing, usage

PRICE_IN, PRICE_OUT = Decimal("0.15"), Decimal("0.60")  # gpt-test in conftest: USD per 1M tokens
MESSAGES = [{"role": "user", "content": "hello there world"}]


def _set(field: str, value: Any) -> Any:
    def hook(usage: dict[str, Any], body: dict[str, Any]) -> Any:
        return {**usage, field: value}

    return hook


HOSTILE = [
    ("prompt 10^13", _set("prompt_tokens", 10**13), "prompt_tokens is beyond any real request"),
    ("prompt 2^63-1", _set("prompt_tokens", 2**63 - 1), "prompt_tokens is beyond any real request"),
    (
        "completion 2^64-1",
        _set("completion_tokens", 2**64 - 1),
        "completion_tokens is beyond any real request",
    ),
    ("prompt string", _set("prompt_tokens", "8753"), "prompt_tokens is not a whole number"),
    ("prompt negative", _set("prompt_tokens", -5), "prompt_tokens is negative"),
    ("prompt fraction", _set("prompt_tokens", 12.5), "prompt_tokens is not a whole number"),
    ("prompt bool", _set("prompt_tokens", True), "prompt_tokens is not a whole number"),
    ("cached list", _set("prompt_tokens_details", {"cached_tokens": [1]}), "cached_tokens is not"),
    ("empty usage", lambda usage, body: {}, "prompt_tokens is missing"),
    ("usage null-ish", lambda usage, body: {"total_tokens": 5}, "prompt_tokens is missing"),
    ("no completion", lambda usage, body: {"prompt_tokens": 5}, "completion_tokens is missing"),
]


async def _post(proxy: Any, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.post(f"{proxy.base}/chat/completions", json=body) as r:
        return r.status, dict(r.headers), await r.read()


def _expected_cost(r: dict[str, Any]) -> Decimal:
    """OpenAI's published rule: tokens x USD per 1M, prompt at input, completion at output (no cache here)."""
    return (r["prompt_tokens"] * PRICE_IN + r["completion_tokens"] * PRICE_OUT) / Decimal(1_000_000)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_hostile_usage_is_estimated_with_a_reason(proxy: Any, fake_upstream: Any, stream: bool) -> None:
    for name, hook, reason in HOSTILE:
        fake_upstream.state.usage_hook = hook
        status, headers, _ = await _post(proxy, {"model": "gpt-test", "messages": MESSAGES, "stream": stream})
        assert status == 200, name
        r = await receipt_of(proxy.base, headers["x-nextmodel-receipt-id"])
        assert r["usage_source"] == "estimated", name
        assert reason in r["usage_reason"], (name, r["usage_reason"])
        # Estimated from the text ("hello there world" and "Echo: hello there world"), never a silent 0.
        assert 0 < r["prompt_tokens"] < 100 and 0 < r["completion_tokens"] < 100, (name, r)
        assert Decimal(r["billed_cost_usd"]) == _expected_cost(r), name
        assert (await healthz(proxy))[0] == 200, name
    fake_upstream.state.usage_hook = None
    status, headers, _ = await _post(proxy, {"model": "gpt-test", "messages": MESSAGES, "stream": stream})
    r = await receipt_of(proxy.base, headers["x-nextmodel-receipt-id"])
    assert (status, r["usage_source"], r["usage_reason"]) == (200, "upstream", None)


async def test_whole_number_floats_are_counts(proxy: Any, fake_upstream: Any) -> None:
    fake_upstream.state.usage_hook = lambda usage, body: {
        **usage,
        "prompt_tokens": 8753.0,
        "completion_tokens": 12.0,
    }
    for stream in (False, True):
        status, headers, _ = await _post(proxy, {"model": "gpt-test", "messages": MESSAGES, "stream": stream})
        r = await receipt_of(proxy.base, headers["x-nextmodel-receipt-id"])
        assert (status, r["usage_source"], r["prompt_tokens"], r["completion_tokens"]) == (
            200,
            "upstream",
            8753,
            12,
        )
        assert Decimal(r["billed_cost_usd"]) == _expected_cost(r)


def test_sanitizer_table() -> None:
    ok = usage.check_usage({"prompt_tokens": 10, "completion_tokens": 2.0})
    assert ok.usage == usage.Usage(10, 2) and ok.reason is None
    bound = usage.MAX_TOKEN_COUNT
    assert usage.check_usage({"prompt_tokens": bound, "completion_tokens": 0}).usage is not None
    assert usage.check_usage({"prompt_tokens": bound + 1, "completion_tokens": 0}).usage is None
    assert usage.check_usage({"prompt_tokens": float("nan"), "completion_tokens": 0}).usage is None
    assert usage.check_usage({"prompt_tokens": float("inf"), "completion_tokens": 0}).usage is None
    assert usage.check_usage("8753").reason == "usage is not an object (str)"
    # Embeddings report no completion count; DeepSeek's hit + miss stand in for prompt_tokens.
    assert usage.check_usage({"prompt_tokens": 7}, completion_required=False).usage == usage.Usage(7, 0)
    deepseek = {"prompt_cache_hit_tokens": 3, "prompt_cache_miss_tokens": 4, "completion_tokens": 1}
    assert usage.check_usage(deepseek, "deepseek").usage == usage.Usage(7, 1, 3)
    anthropic = {"input_tokens": 5, "output_tokens": "2"}
    assert "output_tokens is not a whole number" in (usage.check_usage(anthropic, "anthropic").reason or "")
    assert usage.check_usage({"promptTokenCount": 4}, "gemini").usage == usage.Usage(4, 0)
    # The cost bound: a price no provider charges cannot overflow the picodollar column either.
    huge = pricing.Price(input=Decimal(10**12), output=Decimal(0))
    assert pricing.cost(usage.Usage(bound, 0), huge).amount is None
