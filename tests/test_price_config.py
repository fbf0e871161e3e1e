"""The price model and FX in providers.yaml: every mistake named by its YAML path in check-config, and serve
refuses to start; excess-only tiers and service-tier multipliers priced by their published rule; prices check."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from nextmodel_proxy.cli.main import main as cli
from nextmodel_proxy.config import ConfigError, load_config, load_yaml_text, parse_config
from nextmodel_proxy.price_checks import check
from nextmodel_proxy.price_resolve import resolve
from nextmodel_proxy.pricing import native_cost
from nextmodel_proxy.usage import Usage

HEAD = """
providers: {p: {kind: demo}}
models:
  m:
    provider: p
"""


def _model(body: str, extra: str = "") -> str:
    return HEAD + "".join(f"    {line}\n" for line in body.strip().splitlines()) + extra


BAD = [
    (
        "prices: [{from: 2026-12-01, input: 1, output: 2}, {from: 2026-11-01, input: 2, output: 4}]",
        "models.m.prices.1.from",
        "before entry 0",
    ),
    (
        "prices: [{from: 2026-12-01, input: 1, output: 2}, {from: 2026-12-01, input: 2, output: 4}]",
        "models.m.prices.1.from",
        "overlaps entry 0",
    ),
    (
        "price: {input: 1, output: 2}\ntiers: [{above_input_tokens: 1000, input: 2, output: 4}, "
        "{above_input_tokens: 1000, input: 3, output: 6}]",
        "models.m.tiers.1.above_input_tokens",
        "equal to tier 0",
    ),
    (
        'price: {input: 1, output: 2}\nwindows: [{utc: "25:00-01:00", input: 1, output: 1}]',
        "models.m.windows.0.utc",
        "HH:MM-HH:MM",
    ),
    (
        'price: {input: 1, output: 2}\nwindows: [{utc: "10:00", input: 1, output: 1}]',
        "models.m.windows.0.utc",
        "HH:MM-HH:MM",
    ),
    (
        'price: {input: 1, output: 2}\nwindows: [{utc: "22:00-02:00", input: 1, output: 1}, '
        '{utc: "01:00-03:00", input: 1, output: 1}]',
        "models.m.windows.1.utc",
        "overlaps window 0",
    ),
    ("currency: XYZ\nprice: {input: 1, output: 2}", "models.m.currency", "unknown currency 'XYZ'"),
    ("currency: CNY\nprice: {input: 1, output: 2}", "models.m.currency", "no FX rate for CNY"),
    (
        "price: {input: 1, output: 2}\nservice_tiers: {flex: {multiplier: 0.5, input: 1}}",
        "models.m.service_tiers.flex",
        "not both",
    ),
    (
        "price: {input: 1, output: 2}\ntiers: [{above_input_tokens: 10, applies_to: most, input: 1, output: 1}]",
        "models.m.tiers.0.applies_to",
        "request or excess",
    ),
]


@pytest.mark.parametrize(("body", "path", "message"), BAD)
def test_check_config_names_the_yaml_path_and_serve_refuses(
    tmp_path: Path, body: str, path: str, message: str
) -> None:
    config = tmp_path / "providers.yaml"
    config.write_text(_model(body))
    checked = CliRunner().invoke(cli, ["check-config", "--config", str(config)])
    assert checked.exit_code == 1 and f"{path}: " in checked.output and message in checked.output, (
        checked.output
    )
    served = CliRunner().invoke(cli, ["serve", "--config", str(config), "--port", "0"])
    assert served.exit_code == 1 and path in served.output


def test_fx_table_mistakes_are_named(tmp_path: Path) -> None:
    for fx, path in (
        ("fx: {rates: [{date: 2026-12-02, GBP: 0.8}, {date: 2026-12-01, GBP: 0.79}]}", "fx.rates.1.date"),
        ("fx: {rates: [{date: 2026-12-02, GPB: 0.8}]}", "fx.rates.0.GPB"),
        ("fx: {rates: [{GBP: 0.8}]}", "fx.rates.0.date"),
        ("fx: {rates: []}", "fx.rates"),
    ):
        with pytest.raises(ConfigError) as err:
            parse_config(load_yaml_text(_model("price: {input: 1, output: 2}", fx + "\n")))
        assert err.value.path == path, (fx, err.value)


def test_stale_and_undated_rates_are_warned_by_check_config(tmp_path: Path) -> None:
    config = tmp_path / "providers.yaml"
    config.write_text(
        _model(
            "currency: CNY\nprice: {input: 1, output: 2}",
            "currency: {display: GBP, rates: {GBP: 0.79}}\nfx: {max_age_days: 7, rates: [{date: 2020-01-01, CNY: 7.1}]}\n",
        )
    )
    out = CliRunner().invoke(cli, ["check-config", "--config", str(config)]).output
    assert "warning: fx: CNY: newest rate is dated 2020-01-01" in out
    assert "warning: fx: GBP: rate 0.79 is undated" in out


def test_an_excess_tier_bills_only_the_tokens_past_each_threshold() -> None:
    cfg = parse_config(
        load_yaml_text(
            _model(
                "price: {input: 1, output: 2, cached_input: 0.1}\n"
                "tiers: [{above_input_tokens: 1000, applies_to: excess, input: 3, output: 4}, "
                "{above_input_tokens: 5000, applies_to: excess, input: 5, output: 6}]"
            )
        )
    )
    pm = cfg.models["m"].pricing
    at = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
    u = Usage(prompt_tokens=7000, completion_tokens=100, cached_tokens=500)
    price = resolve("m", pm, at, u.prompt_tokens)
    # Prompt order: 500 cached (first 500 tokens), then 6500 uncached: 500 more at the base input rate,
    # 4000 at the first tier's, 2000 at the second's; output at the top tier's rate.
    expected = (500 * Decimal("0.1") + 500 * 1 + 4000 * 3 + 2000 * 5 + 100 * 6) / Decimal(1_000_000)
    assert native_cost(u, price) == expected and price.price_tier == ">5000 (excess)"


def test_a_multiplier_service_tier_scales_the_price_that_would_otherwise_apply() -> None:
    cfg = parse_config(
        load_yaml_text(
            _model(
                "price: {input: 2, output: 10, cached_input: 0.2}\n"
                "tiers: [{above_input_tokens: 100, input: 4, output: 20, cached_input: 0.4}]\n"
                'windows: [{utc: "23:00-01:00", input: 1, output: 5}]\n'
                "service_tiers: {flex: {multiplier: 0.5}, priority: {input: 9, output: 9}}"
            )
        )
    )
    pm = cfg.models["m"].pricing
    night = dt.datetime(2026, 12, 6, 0, 30, tzinfo=dt.UTC)
    p = resolve("m", pm, night, 200, "flex")  # tier, then window (replaces in/out), then x0.5
    assert (p.rates.input, p.rates.output, p.rates.cached_input) == (
        Decimal("0.5"),
        Decimal("2.5"),
        Decimal("0.2"),
    )
    assert (p.price_tier, p.price_window, p.service_tier) == (">100", "23:00-01:00", "flex")
    assert resolve("m", pm, night, 200, "scale").service_tier is None  # a tier the entry does not price


def test_prices_check_flags_notes_that_mention_unmodelled_rules(tmp_path: Path) -> None:
    cfg = parse_config(
        load_yaml_text(
            _model(
                "price: {input: 1, output: 2}\nas_of: 2026-01-01\n"
                'notes: "Off-peak is half. Prompts over 200K pay double. Priority 2x."',
                "  soon: {provider: p, prices: [{from: 2026-01-01, input: 1, output: 1}, {from: 2026-12-20, input: 2, output: 2}]}\n",
            )
        )
    )
    findings = {(f.kind, f.subject, f.message.split(" but")[0]) for f in check(cfg, dt.date(2026, 12, 6))}
    assert ("stale", "m", "prices as of 2026-01-01, 339 days old") in findings
    assert ("change-soon", "soon", "new price from 2026-12-20 (in 14 days)") in findings
    kinds = {msg for kind, subject, msg in findings if kind == "unmodelled"}
    assert kinds == {"notes mention 'Off-peak'", "notes mention 'Prompts over'", "notes mention 'Priority'"}


def test_the_shipped_catalog_models_what_its_notes_say() -> None:
    shipped = load_config(Path(__file__).resolve().parents[1] / "providers.yaml")
    assert [f for f in check(shipped, dt.date(2026, 12, 6)) if f.kind == "unmodelled"] == []
