"""FX through the running proxy: a CNY model's receipts keep the native cost, the rate and its date; after the
dated table gains a rate, `spend --currency GBP` converts each receipt at its own day's rate and equals the CSV
to the digit; `/v1/receipts`, spend and the CSV agree in USD."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from billing_support import Billing, cost, money

FIRST = [{"date": "2026-12-01", "GBP": 0.79, "CNY": 7.12}]
LATER = [*FIRST, {"date": "2026-12-05", "GBP": 0.80, "CNY": 7.10}]


def usage(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


@pytest.fixture
async def billing(tmp_path: Path, fake_upstream: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("NMPROXY_TEST_FAKE_KEY", "sk-upstream-secret")
    b = Billing(tmp_path, fake_upstream.url)
    yield b
    await b.stop()


async def test_cny_receipts_and_spend_in_gbp_equal_the_csv_after_the_rate_changes(billing: Billing) -> None:
    await billing.start(FIRST, display="GBP")
    early = [
        await billing.chat("doubao", "2026-12-02T08:00:00Z", usage(20_000, 3_000, cached=5_000)),
        await billing.chat("sol", "2026-12-02T09:00:00Z", usage(1_234, 567)),
    ]
    await billing.start(LATER, display="GBP")  # the table gains a rate; the same ledger
    late = [
        await billing.chat("doubao", "2026-12-06T08:00:00Z", usage(20_000, 3_000, cached=5_000)),
        await billing.chat("sol", "2026-12-06T09:00:00Z", usage(1_234, 567)),
    ]
    # Volcengine: CNY 0.2 in / 2 out / 0.04 cached (0-32K input).
    native = cost((15_000, "0.2"), (5_000, "0.04"), (3_000, "2"))
    for r, cny, gbp, day in ((early[0], "7.12", "0.79", "2026-12-01"), (late[0], "7.1", "0.8", "2026-12-05")):
        assert (r["currency"], Decimal(r["native_cost"]), r["fx_date"]) == ("CNY", native, day)
        assert Decimal(r["fx_rate"]) == Decimal(cny) and Decimal(r["display_rate"]) == Decimal(gbp)
        assert Decimal(r["billed_cost_usd"]) == money(native / Decimal(cny))
    assert early[1]["currency"] == "USD" and early[1]["fx_rate"] == "1"

    exported = billing.cli("receipts", "export")
    assert exported.exit_code == 0, exported.output
    rows = list(csv.DictReader(io.StringIO(exported.output)))
    assert len(rows) == 4 and {r["currency"] for r in rows} == {"CNY", "USD"}
    csv_gbp = sum(Decimal(r["billed_cost_display"]) for r in rows)
    csv_usd = sum(Decimal(r["billed_cost_usd"]) for r in rows)
    # Each receipt at its own day's rate, never today's for past receipts.
    expected_gbp = sum(
        Decimal(r["billed_cost_usd"]) * Decimal(g)
        for r, g in zip([*early, *late], ["0.79", "0.79", "0.8", "0.8"], strict=True)
    )
    assert csv_gbp == expected_gbp

    spent = billing.cli("spend", "--currency", "GBP", "--json", "--by", "model")
    assert spent.exit_code == 0, spent.output
    data = orjson.loads(spent.output)
    assert Decimal(data["total"]["billed_cost_display"]) == csv_gbp  # to the digit
    assert Decimal(data["total"]["billed_cost_usd"]) == csv_usd
    assert data["display_rate"] == "per receipt"
    in_usd = orjson.loads(billing.cli("spend", "--currency", "USD", "--json").output)
    assert Decimal(in_usd["total"]["billed_cost_usd"]) == csv_usd
    api = [await billing.receipt(r["receipt_id"]) for r in [*early, *late]]
    assert sum(Decimal(r["billed_cost_usd"]) for r in api) == csv_usd

    # The CSV's appended columns carry the unit prices the receipt used.
    doubao = next(r for r in rows if r["model"] == "doubao")
    assert (
        doubao["unit_input_per_1m"],
        doubao["unit_output_per_1m"],
        doubao["unit_cached_input_per_1m"],
    ) == ("0.2", "2", "0.04")
    assert list(rows[0])[-11:] == [
        "currency",
        "native_cost",
        "fx_rate",
        "fx_date",
        "unit_input_per_1m",
        "unit_output_per_1m",
        "unit_cached_input_per_1m",
        "unit_cache_write_per_1m",
        "price_tier",
        "price_window",
        "service_tier",
    ]


async def test_a_model_currency_without_any_rate_refuses_to_load(billing: Billing) -> None:
    with pytest.raises(Exception, match=r"models\.doubao\.currency: no FX rate for CNY"):
        await billing.start([{"date": "2026-12-01", "GBP": 0.79}])
