"""The shipped catalog, /v1/models rows, freshness/retirement flags, and `nmproxy models`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from nextmodel_proxy.catalog import (
    STALE_AFTER_DAYS,
    blended_price,
    check_not_retired,
    model_status,
    models_list,
)
from nextmodel_proxy.cli.models import models_command
from nextmodel_proxy.config import ConfigError, load_config, load_yaml_text, parse_config
from nextmodel_proxy.errors import ProxyError

SHIPPED = Path(__file__).resolve().parent.parent / "providers.yaml"
TODAY = dt.date(2026, 11, 22)

SMALL = """
providers:
  demo: {kind: demo}
  acme: {kind: openai, base_url: https://acme.example/v1, api_key_env: ACME_KEY, tags: [global]}
  local: {kind: openai, base_url: http://127.0.0.1:11434/v1, tags: [local]}
models:
  fresh: {provider: acme, price: {input: 1, output: 4, cached_input: 0.1}, as_of: 2026-11-01,
          capabilities: [tools, vision], latency: {ttft_ms: 900}, context_window: 200000}
  old: {provider: acme, price: {input: 0.5, output: 1}, as_of: 2026-08-01, capabilities: [tools],
        latency: {ttft_ms: 300}}
  leaving: {provider: acme, price: {input: 3, output: 15}, as_of: 2026-11-20, retires: 2026-12-10,
            replacement: fresh}
  gone: {provider: acme, as_of: 2026-06-01, retires: 2026-07-24, replacement: fresh}
  lan: {provider: local, price: {input: 0, output: 0}, latency: {ttft_ms: 100}}
routes:
  pick: {strategy: cheapest, candidates: [fresh, old], require: [tools], max_price: {output: 5}}
"""


def small_config():
    return parse_config(load_yaml_text(SMALL))


@pytest.fixture(scope="module")
def shipped():
    return load_config(SHIPPED)


def run_models(config_path: Path, *args: str) -> str:
    result = CliRunner().invoke(
        models_command, ["--config", str(config_path), "--today", "2026-11-22", *args]
    )
    assert result.exit_code == 0, result.output
    return result.output


# --- the shipped providers.yaml --------------------------------------------------------------------


def test_shipped_config_has_at_least_42_real_priced_models_with_source_and_date(shipped):
    real = [
        m for m in shipped.models.values() if m.provider not in ("demo", "ollama") and m.price is not None
    ]
    distinct_upstream = {(m.provider, m.upstream_id) for m in real}  # an alias is not a second model
    assert len(distinct_upstream) >= 42
    for m in real:
        assert m.source and m.source.startswith("https://"), m.id
        assert m.as_of is not None and m.as_of <= TODAY, m.id
        assert m.price.input > 0 and m.price.output > 0, m.id


def test_shipped_config_covers_global_domestic_and_local_sources(shipped):
    providers = {m.provider for m in shipped.models.values()}
    assert {
        "openai",
        "anthropic",
        "gemini",
        "xai",
        "mistral",
        "deepseek",
        "doubao",
        "qwen",
        "moonshot",
        "zhipu",
        "minimax",
        "ollama",
        "demo",
    } <= providers
    tags = {t for m in shipped.models.values() for t in m.tags}
    assert {"global", "domestic", "local"} <= tags


def test_shipped_issue_examples_resolve_to_real_upstream_ids(shipped):
    sonnet = shipped.models["claude-sonnet-4-5"]
    assert sonnet.retires == dt.date(2026, 11, 30) and sonnet.replacement == "claude-sonnet-5-5"
    assert sonnet.price.cache_write == Decimal("3.75")
    alias = shipped.models["doubao-seed-2-0-mini"]
    assert alias.upstream_id == "doubao-seed-2-0-mini-260215"
    assert shipped.models["demo-chat"].price.cached_input == Decimal("0.05")
    assert shipped.models["demo-embed"].mode == "embedding"


def test_shipped_prices_are_exact_decimals(shipped):
    doubao = shipped.models["doubao-seed-2-0-mini-260215"].pricing
    # Published in CNY and kept in CNY (issue 11): no assumed conversion rounded to 4 decimals.
    assert doubao.currency == "CNY" and doubao.schedule[0].rates.input == Decimal("0.2")
    assert shipped.models["gpt-6-luna"].price.cache_write == Decimal("0.125")


def test_shipped_routes_and_budget_switch_are_wired(shipped):
    assert {"smart", "cheap", "fast"} <= set(shipped.routes)
    budget = shipped.projects["acme-web"].budget
    assert budget.switch_route == "cheap" and budget.switch_at == Decimal("0.8")


def test_replacement_must_name_a_known_model():
    with pytest.raises(ConfigError) as err:
        parse_config(load_yaml_text(SMALL.replace("replacement: fresh}", "replacement: nope}", 1)))
    assert err.value.path == "models.leaving.replacement"


# --- flags -------------------------------------------------------------------------------------------


def test_price_older_than_threshold_is_stale():
    cfg = small_config()
    assert model_status(cfg.models["old"], TODAY).stale
    assert not model_status(cfg.models["fresh"], TODAY).stale
    boundary = cfg.models["old"].as_of + dt.timedelta(days=STALE_AFTER_DAYS)
    assert not model_status(cfg.models["old"], boundary).stale
    assert model_status(cfg.models["old"], boundary + dt.timedelta(days=1)).stale


def test_model_within_30_days_of_retirement_is_retiring_soon_then_retired_on_the_day():
    leaving = small_config().models["leaving"]
    assert not model_status(leaving, dt.date(2026, 11, 9)).retiring_soon
    assert model_status(leaving, dt.date(2026, 11, 10)).retiring_soon
    on_day = model_status(leaving, dt.date(2026, 12, 10))
    assert on_day.retired and not on_day.retiring_soon
    assert on_day.labels(leaving) == ["RETIRED 2026-12-10"]


def test_request_to_retired_model_gets_410_naming_date_and_replacement():
    gone = small_config().models["gone"]
    with pytest.raises(ProxyError) as err:
        check_not_retired(gone, TODAY)
    assert err.value.status == 410 and err.value.code == "model_retired"
    assert "2026-07-24" in err.value.message and "'fresh'" in err.value.message
    check_not_retired(small_config().models["leaving"], TODAY)  # still allowed before its date


# --- /v1/models --------------------------------------------------------------------------------------


def test_models_list_rows_carry_pricing_as_exact_strings_and_flags():
    body = models_list(small_config(), TODAY)
    assert body["object"] == "list"
    rows = {r["id"]: r for r in body["data"]}
    fresh = rows["fresh"]
    assert fresh["object"] == "model" and fresh["owned_by"] == "acme" and isinstance(fresh["created"], int)
    assert fresh["pricing"] == {
        "input": "1",
        "output": "4",
        "cached_input": "0.1",
        "cache_write": None,
        "unit": "USD per 1M tokens",
    }
    assert fresh["capabilities"] == ["tools", "vision"] and fresh["tags"] == ["global"]
    assert fresh["latency"]["ttft_ms"] == 900 and fresh["latency"]["estimate"] is True
    assert rows["old"]["stale"] is True
    assert rows["leaving"]["retiring_soon"] is True and rows["leaving"]["retires"] == "2026-12-10"
    assert rows["gone"]["retired"] is True and rows["gone"]["pricing"] is None
    orjson.dumps(body)  # serialisable as is


def test_models_list_includes_routes_as_models():
    rows = {r["id"]: r for r in models_list(small_config(), TODAY)["data"]}
    pick = rows["pick"]
    assert pick["object"] == "model"
    assert pick["route"] == {
        "strategy": "cheapest",
        "candidates": ["fresh", "old"],
        "require": ["tools"],
        "tags": [],
        "max_price": {"output": "5"},
    }


def test_blended_price_weighs_input_three_to_one():
    assert blended_price(small_config().models["fresh"].price) == Decimal("1.75")  # (3*1 + 4) / 4


# --- nmproxy models ----------------------------------------------------------------------------------


@pytest.fixture()
def small_path(tmp_path):
    path = tmp_path / "providers.yaml"
    path.write_text(SMALL)
    return path


def _model_names(output: str) -> list[str]:
    lines = output.strip().splitlines()
    return [
        line.split()[0]
        for line in lines[1:]
        if line.strip() and not line.startswith(" ") and "models." not in line
    ]


def test_models_cli_sorts_by_blended_price_with_unpriced_last(small_path):
    names = _model_names(run_models(small_path, "--sort", "price"))
    assert names == ["lan", "old", "fresh", "leaving", "gone"]


def test_models_cli_sorts_by_latency_estimate(small_path):
    names = _model_names(run_models(small_path, "--sort", "latency"))
    assert names[:3] == ["lan", "old", "fresh"]


def test_models_cli_filters_by_capability_provider_and_tag(small_path):
    assert _model_names(run_models(small_path, "--capability", "vision")) == ["fresh"]
    assert _model_names(run_models(small_path, "--tag", "local")) == ["lan"]
    assert set(_model_names(run_models(small_path, "--provider", "acme"))) == {
        "fresh",
        "old",
        "leaving",
        "gone",
    }


def test_models_cli_table_shows_flags(small_path):
    out = run_models(small_path)
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert lines["old"].rstrip().endswith("STALE")
    assert "RETIRING 2026-12-10" in lines["leaving"]
    assert "RETIRED 2026-07-24" in lines["gone"]
    assert "~900ms" in lines["fresh"] and "200K" in lines["fresh"]


def test_models_cli_json_gives_exact_decimal_strings(small_path):
    data = orjson.loads(run_models(small_path, "--json", "--sort", "price"))["data"]
    assert [r["id"] for r in data][:2] == ["lan", "old"]
    fresh = next(r for r in data if r["id"] == "fresh")
    assert fresh["pricing"]["cached_input"] == "0.1" and fresh["blended_price"] == "1.75"


def test_models_cli_unknown_provider_is_a_clean_error(small_path):
    result = CliRunner().invoke(models_command, ["--config", str(small_path), "--provider", "nope"])
    assert result.exit_code == 1 and "unknown provider nope" in result.output
    assert "Traceback" not in result.output


def test_models_cli_runs_on_the_shipped_config():
    out = run_models(SHIPPED, "--tag", "domestic", "--sort", "price")
    assert "doubao-seed-2-0-mini" in out and "gpt-6-luna" not in out
    assert "RETIRED 2026-07-24" in out  # deepseek-chat
