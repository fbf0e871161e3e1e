"""`nmproxy reconcile` against golden OpenAI, Anthropic and generic exports, over a ledger built through the
running proxy (replays included, which never reached the upstream and so never count)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from billing_support import Billing

GOLDEN = Path(__file__).parent / "fixtures" / "reconcile"
FX = [{"date": "2026-09-01", "GBP": 0.79, "CNY": 7.12}]
SOL = {"prompt_tokens": 10_000, "completion_tokens": 1_000, "prompt_tokens_details": {"cached_tokens": 2_000}}
DEEPSEEK = {
    "prompt_tokens": 500_000,
    "completion_tokens": 80_000,
    "prompt_cache_hit_tokens": 300_000,
    "prompt_cache_miss_tokens": 200_000,
}


@pytest.fixture
async def ledger(tmp_path: Path, fake_upstream: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("NMPROXY_TEST_FAKE_KEY", "sk-upstream-secret")
    b = Billing(tmp_path, fake_upstream.url)
    await b.start(FX)
    await b.chat("sol", "2026-12-02T08:00:00Z", SOL)
    await b.chat("sol", "2026-12-02T08:01:00Z", SOL, temperature=0)  # deterministic: stored in the cache
    replay = await b.chat("sol", "2026-12-02T08:02:00Z", SOL, temperature=0)
    assert replay["served_mode"] == "exact-cache"  # never reached the upstream: not on the invoice
    await b.chat("deepseek", "2026-12-02T12:00:00Z", DEEPSEEK)  # off-peak
    await b.chat("sol", "2026-12-03T08:00:00Z", SOL)
    await b.chat("deepseek", "2026-12-03T12:00:00Z", DEEPSEEK)
    for day in ("02", "03", "04"):
        await b.chat("opus55", f"2026-12-{day}T09:00:00Z")
    yield b
    await b.stop()


def _lines(result: Any) -> dict[tuple[str, str], dict[str, Any]]:
    data = orjson.loads(result.output)
    return {(x["day"], x["model"]): x for x in data["lines"]}


@pytest.mark.parametrize("name", ["openai_usage_and_costs.json", "generic.csv"])
async def test_openai_and_generic_exports(ledger: Billing, name: str) -> None:
    result = ledger.cli("reconcile", "--provider", "fake", "--file", str(GOLDEN / name), "--json")
    assert result.exit_code == 1, result.output
    lines = _lines(result)
    assert {k: v["status"] for k, v in lines.items()} == {
        ("2026-12-02", "fake-basic"): "matched",
        ("2026-12-02", "fake-deepseek"): "mismatch",
        ("2026-12-03", "fake-basic"): "matched",
        ("2026-12-03", "fake-deepseek"): "proxy-only",
        ("2026-12-03", "fake-json"): "provider-only",
    }
    basic = lines[("2026-12-02", "fake-basic")]
    assert basic["proxy"]["input_tokens"] == 20_000  # two fresh calls; the replay is not counted
    assert basic["delta"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cached_input_tokens": 0,
        "cost": "0.00",
    }
    # The provider billed the peak rate; the ledger priced the off-peak window: half of it.
    assert lines[("2026-12-02", "fake-deepseek")]["delta"]["cost"] == "0.0789"
    text = ledger.cli("reconcile", "--provider", "fake", "--file", str(GOLDEN / name))
    assert (
        text.exit_code == 1 and "TOTAL: 2 matched, 1 mismatch, 1 provider-only, 1 proxy-only" in text.output
    )


async def test_anthropic_usage_and_cost_report(ledger: Billing) -> None:
    path = GOLDEN / "anthropic_usage_and_cost_report.json"
    result = ledger.cli(
        "reconcile", "--provider", "anthropic", "--file", str(path), "--format", "anthropic", "--json"
    )
    assert result.exit_code == 1, result.output
    lines = _lines(result)
    assert {k: v["status"] for k, v in lines.items()} == {
        ("2026-12-02", "claude-opus-5-5-cachettl"): "matched",
        ("2026-12-03", "claude-opus-5-5-cachettl"): "mismatch",
        ("2026-12-04", "claude-haiku-5-5"): "provider-only",
        ("2026-12-04", "claude-opus-5-5-cachettl"): "proxy-only",
    }
    matched = lines[("2026-12-02", "claude-opus-5-5-cachettl")]
    assert matched["provider"]["cost"] == "0.02928" and matched["proxy"]["cost"] == "0.02928"
    assert lines[("2026-12-03", "claude-opus-5-5-cachettl")]["delta"]["output_tokens"] == 1


async def test_every_line_matching_exits_zero(ledger: Billing, tmp_path: Path) -> None:
    clean = tmp_path / "clean.csv"
    clean.write_text(
        "date,model,input_tokens,output_tokens,cached_input_tokens,cost,currency\n"
        "2026-12-02,fake-basic,20000,2000,4000,0.0524,USD\n"
        "2026-12-02,fake-deepseek,500000,80000,300000,0.0789,USD\n"
        "2026-12-03,fake-basic,10000,1000,2000,0.0262,USD\n"
        "2026-12-03,fake-deepseek,500000,80000,300000,0.0789,USD\n"
    )
    result = ledger.cli("reconcile", "--provider", "fake", "--file", str(clean))
    assert result.exit_code == 0, result.output
    # A cent's tolerance does not hide a dollar.
    clean.write_text(clean.read_text().replace("0.0262", "1.0262"))
    assert ledger.cli("reconcile", "--provider", "fake", "--file", str(clean)).exit_code == 1
    loose = ledger.cli("reconcile", "--provider", "fake", "--file", str(clean), "--tolerance", "1")
    assert loose.exit_code == 0, loose.output


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"object": "list", "rows": []}', "expected an OpenAI Usage/Costs API page"),
        (
            "day,model,tokens\n2026-12-02,x,1\n",
            "date,model,input_tokens,output_tokens,cached_input_tokens,cost,currency",
        ),
        (
            "date,model,input_tokens,output_tokens,cached_input_tokens,cost,currency\n2026-13-40,x,1,1,0,1,USD\n",
            "line 2",
        ),
    ],
)
async def test_a_file_it_cannot_read_is_one_line_and_exit_2(
    ledger: Billing, tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "export.txt"
    path.write_text(content)
    result = ledger.cli("reconcile", "--provider", "fake", "--file", str(path))
    assert result.exit_code == 2 and expected in result.output and result.output.count("\n") == 1, (
        result.output
    )
    missing = ledger.cli("reconcile", "--provider", "fake", "--file", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 2 and "cannot read" in missing.output


async def test_a_cny_invoice_is_compared_with_the_native_cost(
    tmp_path: Path, fake_upstream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NMPROXY_TEST_FAKE_KEY", "sk-upstream-secret")
    b = Billing(tmp_path, fake_upstream.url)
    await b.start(FX)
    try:
        for _ in range(3):  # Doubao Seed 2.0 Mini, CNY 0.2 in / 2 out / 0.04 cached: CNY 0.0092 each
            await b.chat(
                "doubao",
                "2026-12-02T10:00:00Z",
                {
                    "prompt_tokens": 20_000,
                    "completion_tokens": 3_000,
                    "prompt_tokens_details": {"cached_tokens": 5_000},
                },
            )
        invoice = tmp_path / "volcengine.csv"
        invoice.write_text(
            "date,model,input_tokens,output_tokens,cached_input_tokens,cost,currency\n"
            "2026-12-02,fake-basic,60000,9000,15000,0.0276,CNY\n"
        )
        result = b.cli("reconcile", "--provider", "fake", "--file", str(invoice), "--json")
        assert result.exit_code == 0, result.output
        line = orjson.loads(result.output)["lines"][0]
        assert (line["status"], line["proxy"]["cost"], line["proxy"]["currency"]) == (
            "matched",
            "0.0276",
            "CNY",
        )
    finally:
        await b.stop()
