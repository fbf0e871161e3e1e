"""Issue 11 golden cases through the running proxy and the fake upstreams, with the shipped catalog's price
models. Every expected figure is computed here from the provider's published rule (the reference catalog,
shared/reference/model-catalog.md), not by the pricing code."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from billing_support import Billing, cost, money

FX = [{"date": "2026-09-01", "GBP": 0.79, "CNY": 7.12}]


@pytest.fixture
async def billing(tmp_path: Path, fake_upstream: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("NMPROXY_TEST_FAKE_KEY", "sk-upstream-secret")
    b = Billing(tmp_path, fake_upstream.url)
    await b.start(FX)
    yield b
    await b.stop()


def usage(prompt: int, completion: int, cached: int = 0, **details: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, **details},
    }


def usd(receipt: dict[str, Any]) -> Decimal:
    return Decimal(receipt["billed_cost_usd"])


# --- dated schedule ---------------------------------------------------------------------------------------


async def test_argon_bills_the_launch_price_until_the_last_second_of_november(billing: Billing) -> None:
    u = usage(10_000, 2_000, cached=4_000)
    before = await billing.chat("argon", "2026-11-30T23:59:59Z", u)
    after = await billing.chat("argon", "2026-12-01T00:00:00Z", u)
    # Google: launch $2 / $10 / $0.10 cached to 2026-11-30; from 2026-12-01 $4 / $20 / $0.20.
    assert usd(before) == cost((6_000, 2), (4_000, "0.1"), (2_000, 10))
    assert usd(after) == cost((6_000, 4), (4_000, "0.2"), (2_000, 20))
    assert usd(after) == 2 * usd(before)
    assert before["price_version"] != after["price_version"]


async def test_gemini_38_flash_doubles_on_new_year(billing: Billing) -> None:
    u = usage(1_000, 1_000)
    before = await billing.chat("flash38", "2026-12-31T23:59:59Z", u)
    after = await billing.chat("flash38", "2027-01-01T00:00:00Z", u)
    assert usd(before) == cost((1_000, "0.75"), (1_000, "3.75"))
    assert usd(after) == cost((1_000, "1.50"), (1_000, "7.50"))


# --- time-of-day windows -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "peak"),
    [
        ("2026-12-02T00:59:59Z", False),  # off-peak runs to 01:00
        ("2026-12-02T01:00:00Z", True),
        ("2026-12-02T03:59:59Z", True),
        ("2026-12-02T04:00:00Z", False),  # off-peak 04:00-06:00
        ("2026-12-02T05:59:59Z", False),
        ("2026-12-02T06:00:00Z", True),
        ("2026-12-02T09:59:59Z", True),
        ("2026-12-02T10:00:00Z", False),
    ],
)
async def test_deepseek_off_peak_is_half_price_a_second_either_side_of_each_edge(
    billing: Billing, at: str, peak: bool
) -> None:
    ds = {
        "prompt_tokens": 5_000,
        "completion_tokens": 800,
        "prompt_cache_hit_tokens": 3_000,
        "prompt_cache_miss_tokens": 2_000,
    }
    r = await billing.chat("deepseek", at, ds)
    # DeepSeek: peak 01:00-04:00 and 06:00-10:00 UTC at $0.30 / $1.20 / $0.006 cached; off-peak is half.
    half = Decimal(1) if peak else Decimal("0.5")
    assert usd(r) == cost((2_000, "0.3"), (3_000, "0.006"), (800, "1.2")) * half
    assert (r["price_window"] is None) == peak


# --- long-context tiers ------------------------------------------------------------------------------------

# (model, threshold, base (in, out, cached), the published rule for the whole request above it)
TIER_RULES = [
    ("sol", 272_000, ("2", "10", "0.1"), lambda p: (2 * p[0], Decimal("1.5") * p[1], 2 * p[2])),  # GPT-6.x
    ("luna", 272_000, ("0.1", "0.5", "0.01"), lambda p: (2 * p[0], Decimal("1.5") * p[1], 2 * p[2])),
    ("haiku55", 100_000, ("0.1", "0.5", "0.01"), lambda p: (Decimal("0.5"), Decimal("2.5"), Decimal("0.05"))),
    ("pro31", 200_000, ("2", "12", "0.2"), lambda p: (Decimal(4), Decimal(18), 2 * p[2])),
    ("grok47", 200_000, ("2", "6", "0.5"), lambda p: (2 * p[0], 2 * p[1], 2 * p[2])),  # LiteLLM: 2x >200K
    ("qwen37", 256_000, ("0.4", "1.6", "0.08"), lambda p: (Decimal("1.2"), Decimal("4.8"), Decimal("0.24"))),
]


@pytest.mark.parametrize(("model", "threshold", "base", "rule"), TIER_RULES)
@pytest.mark.parametrize("cached", [0, 50_000])
async def test_long_context_tier_bills_the_whole_request_one_token_past_the_threshold(
    billing: Billing, model: str, threshold: int, base: tuple[str, ...], rule: Any, cached: int
) -> None:
    prices = tuple(Decimal(p) for p in base)
    for prompt, above in ((threshold - 1, False), (threshold, False), (threshold + 1, True)):
        r = await billing.chat(model, "2026-12-03T12:00:00Z", usage(prompt, 1_000, cached=cached))
        inp, out, cache = rule(prices) if above else prices
        assert usd(r) == cost((prompt - cached, inp), (cached, cache), (1_000, out)), (model, prompt)
        assert (r["price_tier"] is not None) == above


async def test_doubao_tiers_are_in_cny_as_published_and_converted_once(billing: Billing) -> None:
    # Volcengine: 0-32K CNY 0.2 in / 2 out, 32-128K CNY 0.4 / 4, cache read CNY 0.04; fx 7.12 CNY per USD.
    small = await billing.chat("doubao", "2026-12-03T12:00:00Z", usage(32_000, 1_000, cached=10_000))
    large = await billing.chat("doubao", "2026-12-03T12:00:00Z", usage(32_001, 1_000, cached=10_000))
    for r, (inp, out) in ((small, ("0.2", "2")), (large, ("0.4", "4"))):
        prompt = int(r["prompt_tokens"])
        native = cost((prompt - 10_000, inp), (10_000, "0.04"), (1_000, out))
        assert (r["currency"], Decimal(r["native_cost"]), r["fx_rate"], r["fx_date"]) == (
            "CNY",
            native,
            "7.12",
            "2026-09-01",
        )
        assert usd(r) == money(native / Decimal("7.12"))
    assert large["price_tier"] == ">32000" and small["price_tier"] is None


# --- service tiers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_priority_and_flex_as_reported_by_the_upstream(billing: Billing, stream: bool) -> None:
    u = usage(10_000, 1_000, cached=2_000)
    standard = cost((8_000, "2"), (2_000, "0.1"), (1_000, "10"))  # GPT-6.2 Sol list price
    prio = await billing.chat("sol", "2026-12-03T12:00:00Z", u, "priority", stream=stream)
    flex = await billing.chat("sol", "2026-12-03T12:00:00Z", u, "flex", stream=stream)
    # Asked for flex, but the upstream served (and bills) the default tier: the report wins.
    asked = await billing.chat(
        "sol", "2026-12-03T12:00:00Z", u, "default", stream=stream, service_tier="flex"
    )
    assert usd(prio) == 2 * standard  # OpenAI "Fast 2x"
    assert usd(flex) == standard / 2  # OpenAI "Batch 50%" (flex)
    assert usd(asked) == standard
    assert [r["service_tier"] for r in (prio, flex, asked)] == ["priority", "flex", "default"]


async def test_service_tier_asked_is_recorded_when_the_upstream_reports_none(billing: Billing) -> None:
    r = await billing.chat("sol", "2026-12-03T12:00:00Z", usage(1_000, 100), service_tier="priority")
    assert r["service_tier"] == "priority"
    assert usd(r) == 2 * cost((1_000, "2"), (100, "10"))


# --- cache writes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_5_minute_and_1_hour_writes_in_one_response(billing: Billing, stream: bool) -> None:
    r = await billing.chat("opus55", "2026-12-03T12:00:00Z", stream=stream)
    # The fixture: input 120, cache read 4000, writes 1000 (5m) + 2000 (1h), output 350. Opus 5.5:
    # $4 in, $20 out, $0.20 read, 5-minute write $5, 1-hour write $8.
    assert (r["prompt_tokens"], r["cached_tokens"], r["cache_write_tokens"]) == (7_120, 4_000, 3_000)
    assert usd(r) == cost((120, 4), (4_000, "0.2"), (1_000, 5), (2_000, 8), (350, 20))
    assert r["service_tier"] == "standard"


async def test_openai_extended_retention_writes_bill_at_the_12_hour_rate(billing: Billing) -> None:
    u = usage(10_000, 100, cached=0, cache_write_tokens=6_000)
    short = await billing.chat("sol", "2026-12-03T12:00:00Z", u)
    extended = await billing.chat("sol", "2026-12-03T12:00:00Z", u, prompt_cache_retention="24h")
    # GPT-6.2 Sol: $2.50 per 1M for 30-minute writes, $5 for 12-hour writes.
    assert usd(short) == cost((4_000, 2), (6_000, "2.5"), (100, 10))
    assert usd(extended) == cost((4_000, 2), (6_000, 5), (100, 10))


# --- price history ------------------------------------------------------------------------------------------


async def test_prices_show_resolves_a_receipts_version(billing: Billing) -> None:
    r = await billing.chat("doubao", "2026-12-03T12:00:00Z", usage(40_000, 10))
    result = billing.cli("prices", "show", r["price_version"], "--json")
    assert result.exit_code == 0, result.output
    import orjson

    shown = orjson.loads(result.output)
    assert shown["price_version"] == r["price_version"] and shown["model"] == "doubao"
    assert (shown["currency"], shown["input"], shown["output"], shown["price_tier"]) == (
        "CNY",
        "0.4",
        "4",
        ">32000",
    )
    text = billing.cli("receipts", "show", r["receipt_id"])
    assert "unit prices" in text.output and "input 0.4" in text.output, text.output
    missing = billing.cli("prices", "show", "000000000000")
    assert missing.exit_code == 1 and "no price version" in missing.output


# --- no silent zero --------------------------------------------------------------------------------------------

MALFORMED = [
    ({"prompt_tokens": "8753", "completion_tokens": 10}, "prompt_tokens is not a whole number"),
    ({"prompt_tokens": -3, "completion_tokens": 10}, "prompt_tokens is negative"),
    ({"completion_tokens": 10}, "prompt_tokens is missing"),
    ({"prompt_tokens": 100}, "completion_tokens is missing"),
    ({}, "prompt_tokens is missing"),
]


async def test_malformed_usage_is_estimated_with_a_reason_and_spend_separates_it(billing: Billing) -> None:
    floats = await billing.chat(
        "sol", "2026-12-03T12:00:00Z", {"prompt_tokens": 8753.0, "completion_tokens": 20.0}
    )
    assert (
        floats["usage_source"] == "upstream" and floats["prompt_tokens"] == 8753
    )  # whole-number floats count
    assert usd(floats) == cost((8753, 2), (20, 10))
    for shape, reason in MALFORMED:
        r = await billing.chat("sol", "2026-12-03T12:00:00Z", shape)
        assert r["usage_source"] == "estimated" and reason in r["usage_reason"], (shape, r["usage_reason"])
        assert usd(r) > 0  # estimated from the text, never a silent 0
    result = billing.cli("spend", "--by", "model", "--usage-source", "--json")
    assert result.exit_code == 0, result.output
    import orjson

    rows = {(r["group"], r["usage_source"]): r for r in orjson.loads(result.output)["rows"]}
    assert rows[("sol", "upstream")]["count"] == 1 and rows[("sol", "estimated")]["count"] == len(MALFORMED)
    assert Decimal(rows[("sol", "upstream")]["billed_cost_usd"]) == usd(floats)
    table = billing.cli("spend", "--by", "model", "--usage-source")
    assert "USAGE SOURCE" in table.output and "estimated" in table.output


# --- retired ids ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "replacement"),
    [
        ("claude-sonnet-4-5", "claude-sonnet-5-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-5-5"),  # the dated id answers the same 410 as its alias
        ("gemini-2.5-flash", "gemini-3.5-flash-lite"),
    ],
)
async def test_retired_ids_answer_410_naming_the_replacement(
    billing: Billing, model: str, replacement: str
) -> None:
    import openai

    assert billing.client is not None
    billing.clock.set("2026-12-06T12:00:00Z")
    with pytest.raises(openai.APIStatusError) as err:
        await billing.client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.status_code == 410
    assert err.value.code == "model_retired" and replacement in err.value.message
