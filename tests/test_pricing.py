"""Golden pricing: exact digits per token kind and per provider dialect, with the providers' own usage shapes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from nextmodel_proxy.config import CurrencyConfig, Price
from nextmodel_proxy.estimate import estimate_tokens
from nextmodel_proxy.pricing import (
    cost,
    format_pusd,
    format_usd,
    from_pusd,
    price_version,
    receipt_costs,
    replay_billed,
    to_display,
    to_pusd,
)
from nextmodel_proxy.usage import Usage, normalise_usage

D = Decimal
GPT_4O = Price(input=D("2.50"), output=D("10.00"), cached_input=D("1.25"))
SONNET = Price(input=D("3"), output=D("15"), cached_input=D("0.30"), cache_write=D("3.75"))
DEEPSEEK_CHAT = Price(input=D("0.27"), output=D("1.10"), cached_input=D("0.07"))
GEMINI_FLASH = Price(input=D("0.30"), output=D("2.50"), cached_input=D("0.075"))

# Usage objects as the providers document them.
OPENAI_USAGE = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
OPENAI_REASONING_USAGE = {
    "prompt_tokens": 75,
    "completion_tokens": 1186,
    "total_tokens": 1261,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 1024},
}
ANTHROPIC_WRITE = {
    "input_tokens": 21,
    "cache_creation_input_tokens": 188086,
    "cache_read_input_tokens": 0,
    "output_tokens": 393,
}
ANTHROPIC_READ = {
    "input_tokens": 21,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 188086,
    "output_tokens": 393,
}
DEEPSEEK_USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 50,
    "total_tokens": 1050,
    "prompt_tokens_details": {"cached_tokens": 896},
    "prompt_cache_hit_tokens": 896,
    "prompt_cache_miss_tokens": 104,
}
GEMINI_RESPONSE = {
    "candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"}}],
    "usageMetadata": {
        "promptTokenCount": 4500,
        "cachedContentTokenCount": 4000,
        "candidatesTokenCount": 200,
        "thoughtsTokenCount": 800,
        "totalTokenCount": 5500,
    },
}


def test_each_token_kind_is_priced_at_its_own_rate_to_the_picodollar() -> None:
    price = Price(input=D("0.15"), output=D("0.60"), cached_input=D("0.075"), cache_write=D("0.1875"))
    assert cost(Usage(1, 0), price).amount == D("0.000000150000")
    assert cost(Usage(0, 1), price).amount == D("0.000000600000")
    assert cost(Usage(1, 0, cached_tokens=1), price).amount == D("0.000000075000")
    assert cost(Usage(1, 0, cache_write_tokens=1), price).amount == D("0.000000187500")
    assert cost(Usage(10, 5, cached_tokens=3, cache_write_tokens=2, reasoning_tokens=4), price).amount == D(
        "0.000004350000"
    )  # 5*0.15 + 3*0.075 + 2*0.1875 + 5*0.60 = 4.35 per 1M


def test_missing_cached_and_write_prices_fall_back_to_the_input_price() -> None:
    price = Price(input=D("2"), output=D("8"))
    assert cost(Usage(1000, 0, cached_tokens=400, cache_write_tokens=100), price).amount == D("0.002")


def test_rounding_to_picodollars_is_half_even() -> None:
    tiny = Price(input=D("0.0000005"), output=D("0.0000015"))
    assert cost(Usage(1, 0), tiny).amount == D("0")  # 0.5 pUSD -> 0 (even)
    assert cost(Usage(3, 0), tiny).amount == D("2e-12")  # 1.5 pUSD -> 2
    assert cost(Usage(0, 1), tiny).amount == D("2e-12")  # 1.5 pUSD -> 2
    assert cost(Usage(5, 0), tiny).amount == D("2e-12")  # 2.5 pUSD -> 2


def test_openai_cached_tokens_are_part_of_prompt_tokens() -> None:
    usage = normalise_usage(OPENAI_USAGE, "openai")
    assert usage == Usage(2006, 300, cached_tokens=1920)
    assert cost(usage, GPT_4O).amount == D("0.005615")  # 86*2.50 + 1920*1.25 + 300*10.00


def test_openai_reasoning_tokens_are_part_of_completion_tokens() -> None:
    usage = normalise_usage({"usage": OPENAI_REASONING_USAGE}, "openai")
    assert usage == Usage(75, 1186, reasoning_tokens=1024)
    assert cost(usage, Price(input=D("1.10"), output=D("4.40"))).amount == D(
        "0.0053009"
    )  # 75*1.10 + 1186*4.40


def test_anthropic_cache_reads_and_writes_are_added_to_input_tokens() -> None:
    write = normalise_usage(ANTHROPIC_WRITE, "anthropic")
    read = normalise_usage(ANTHROPIC_READ, "anthropic")
    assert write == Usage(188107, 393, cached_tokens=0, cache_write_tokens=188086)
    assert read == Usage(188107, 393, cached_tokens=188086, cache_write_tokens=0)
    assert cost(write, SONNET).amount == D("0.7112805")  # 21*3 + 188086*3.75 + 393*15
    assert cost(read, SONNET).amount == D("0.0623838")  # 21*3 + 188086*0.30 + 393*15


def test_deepseek_cache_hits_are_counted_once_whichever_fields_are_sent() -> None:
    both = normalise_usage(DEEPSEEK_USAGE, "deepseek")
    native_only = {k: v for k, v in DEEPSEEK_USAGE.items() if k != "prompt_tokens_details"}
    no_total = {k: v for k, v in native_only.items() if k != "prompt_tokens"}
    assert both == Usage(1000, 50, cached_tokens=896)
    assert normalise_usage(DEEPSEEK_USAGE, "openai") == both
    assert normalise_usage(native_only, "deepseek") == both
    assert normalise_usage(no_total, "deepseek") == both
    assert cost(both, DEEPSEEK_CHAT).amount == D("0.0001458")  # 104*0.27 + 896*0.07 + 50*1.10


def test_gemini_thoughts_are_billed_as_output_and_cached_content_is_part_of_the_prompt() -> None:
    usage = normalise_usage(GEMINI_RESPONSE, "gemini")
    assert usage == Usage(4500, 1000, cached_tokens=4000, reasoning_tokens=800)
    assert cost(usage, GEMINI_FLASH).amount == D("0.00295")  # 500*0.30 + 4000*0.075 + 1000*2.50


@pytest.mark.parametrize(
    ("raw", "dialect", "expected"),
    [
        (
            {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 50}},
            "openai",
            Usage(10, 5, cached_tokens=10),
        ),
        (
            {
                "prompt_tokens": -4,
                "completion_tokens": "7",
                "completion_tokens_details": {"reasoning_tokens": 9},
            },
            "openai",
            Usage(0, 0),
        ),
        ({"prompt_tokens": True, "completion_tokens": 3.0}, "openai", Usage(0, 0)),
        ({"input_tokens": 5, "cache_read_input_tokens": -3, "output_tokens": None}, "anthropic", Usage(5, 0)),
        ({"usageMetadata": "garbage"}, "gemini", Usage(0, 0)),
        (
            {"promptTokenCount": 100, "cachedContentTokenCount": 300, "candidatesTokenCount": 7},
            "gemini",
            Usage(100, 7, cached_tokens=100),
        ),
        (
            {
                "prompt_tokens": 10,
                "completion_tokens": 1,
                "prompt_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 8},
            },
            "openai",
            Usage(10, 1, cached_tokens=8, cache_write_tokens=2),
        ),
        ({}, "deepseek", Usage(0, 0)),
    ],
)
def test_garbage_and_inconsistent_usage_is_clamped_never_negative_never_double(
    raw, dialect, expected
) -> None:
    assert normalise_usage(raw, dialect) == expected


def test_unknown_dialect_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown usage dialect"):
        normalise_usage({}, "bedrock")


def test_unknown_price_gives_no_amount_and_a_reason_never_zero() -> None:
    result = cost(Usage(10, 10), None, model="mystery-1")
    assert result.amount is None
    assert result.reason == "no price for model mystery-1"
    assert cost(None, GPT_4O).reason == "no usage"


def test_usage_rejects_parts_larger_than_their_totals() -> None:
    with pytest.raises(ValueError):
        Usage(5, 0, cached_tokens=6)
    with pytest.raises(ValueError):
        Usage(5, 2, reasoning_tokens=3)


def test_picodollar_conversion_round_trips_exactly() -> None:
    assert to_pusd(D("0.005615")) == 5_615_000_000
    assert from_pusd(5_615_000_000) == D("0.005615")
    assert to_pusd(D("1e-13")) == 0
    assert to_pusd(D("1.5e-12")) == 2
    big = 123_456_789_012_345_678
    assert to_pusd(from_pusd(big)) == big


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (D("0.000150000000"), "0.00015"),
        (D("1.5"), "1.50"),
        (D("0E-12"), "0.00"),
        (D("12"), "12.00"),
        (D("1e-12"), "0.000000000001"),
        (D("-0.25"), "-0.25"),
        (D("123456.789"), "123456.789"),
    ],
)
def test_format_usd_is_plain_exact_and_round_trips(amount, text) -> None:
    assert format_usd(amount) == text
    assert D(text) == amount


def test_price_version_is_stable_and_changes_with_any_rate() -> None:
    version = price_version(GPT_4O)
    assert version is not None and len(version) == 12
    assert price_version(Price(input=D("2.5"), output=D("10"), cached_input=D("1.250"))) == version
    assert price_version(Price(input=D("2.50"), output=D("10.00"), cached_input=D("1.24"))) != version
    assert price_version(Price(input=D("2.50"), output=D("10.00"))) != version
    assert price_version(None) is None


def test_replay_is_billed_at_the_ratio_of_the_fresh_cost() -> None:
    assert replay_billed(D("0.005615"), D("0.1")) == D("0.0005615")
    assert replay_billed(D("0.000000000015"), D("0.1")) == D("0.000000000002")  # 1.5 pUSD -> 2


def test_display_currency_uses_the_configured_rate_exactly() -> None:
    currency = CurrencyConfig(display="GBP", rates={"USD": D(1), "GBP": D("0.79"), "VND": D("26000")})
    assert to_display(D("0.005615"), currency) == (D("0.00443585"), "GBP", D("0.79"))
    assert to_display(D("0.005615"), currency, "VND") == (D("145.99"), "VND", D("26000"))
    with pytest.raises(ValueError, match="no exchange rate"):
        to_display(D(1), currency, "EUR")


def test_estimate_counts_a_quarter_token_per_char_plus_message_overhead() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcde") == 2
    messages = [
        {"role": "system", "content": "x" * 8},
        {"role": "user", "content": [{"type": "text", "text": "hey"}]},
    ]
    assert estimate_tokens(messages) == (4 + 2) + (4 + 1) + 3
    assert estimate_tokens(["abcd", "abcdefgh"]) == 3
    assert estimate_tokens([101, 102, 103]) == 3
    assert estimate_tokens(None) == 0


@pytest.mark.parametrize(
    "pusd", [0, 1, 10, 150_000_000, 5_615_000_000, 10**12, 123 * 10**12 + 5, -1, -(10**12) - 10]
)
def test_integer_money_formatting_matches_the_decimal_form(pusd: int) -> None:
    assert format_pusd(pusd) == format_usd(from_pusd(pusd))


def test_receipt_costs_per_served_mode() -> None:
    usage = normalise_usage(OPENAI_USAGE, "openai")
    fresh = receipt_costs("fresh", usage, GPT_4O, replay_ratio=D("0.1"))
    assert (fresh.upstream, fresh.billed, fresh.fresh, fresh.savings) == (D("0.005615"),) * 3 + (D(0),)
    replay = receipt_costs("exact-cache", usage, GPT_4O, replay_ratio=D("0.1"))
    assert (replay.upstream, replay.billed, replay.fresh, replay.savings) == (
        D(0),
        D("0.0005615"),
        D("0.005615"),
        D("0.0050535"),
    )
    refused = receipt_costs("refused", None, GPT_4O, replay_ratio=D("0.1"))
    assert (refused.upstream, refused.billed, refused.fresh, refused.savings, refused.reason) == (
        0,
        0,
        0,
        0,
        None,
    )
    unknown = receipt_costs("error", None, GPT_4O, replay_ratio=D("0.1"))
    assert (unknown.upstream, unknown.billed, unknown.fresh, unknown.savings) == (None,) * 4
    assert unknown.reason == "no usage"
    unpriced = receipt_costs("fresh", usage, None, replay_ratio=D("0.1"), model="new-model")
    assert unpriced.billed is None and unpriced.reason == "no price for model new-model"
