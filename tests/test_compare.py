"""`nmproxy compare`: the ledger's chat workload repriced under other models, figures checked by hand."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal

import orjson
import pytest
from click.testing import CliRunner

from nextmodel_proxy.cli.compare import compare_command
from nextmodel_proxy.config import Price, load_yaml_text, parse_config
from nextmodel_proxy.ledger import schema as db
from nextmodel_proxy.ledger.compare import Usage, compare, load_workload, usage_cost

CONFIG = """
providers:
  p: {kind: openai, base_url: https://p.example/v1}
models:
  model-a: {provider: p, price: {input: 1, output: 4, cached_input: 0.1}}
  model-b: {provider: p, price: {input: 2, output: 1}}
  embed: {provider: p, mode: embedding, price: {input: 0.02, output: 0}}
  free: {provider: p}
cache: {replay_price_ratio: 0.1}
"""

NOW = dt.datetime.now(dt.UTC)
RECENT = (NOW - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
OLD = (NOW - dt.timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
USD = 10**12  # picodollars per dollar

# (created, project, endpoint, model, served_mode, prompt, cached, completion, billed_pusd)
ROWS = [
    # model-a fresh: (800 x 1 + 200 x 0.1 + 500 x 4) / 1M = $0.00282
    (RECENT, "web", "chat", "model-a", "fresh", 1000, 200, 500, 2_820_000_000),
    # the same answer replayed from the exact cache, billed at 10%: $0.000282
    (RECENT, "web", "chat", "model-a", "exact-cache", 1000, 200, 500, 282_000_000),
    # model-b fresh: (3000 x 2 + 100 x 1) / 1M = $0.0061
    (RECENT, "web", "chat", "model-b", "fresh", 3000, 0, 100, 6_100_000_000),
    # not part of the workload: an error, an old row, another project, an embedding
    (RECENT, "web", "chat", "model-a", "error", 5000, 0, 5000, None),
    (OLD, "web", "chat", "model-a", "fresh", 9000, 0, 9000, 9 * USD),
    (RECENT, "api", "chat", "model-b", "fresh", 7000, 0, 7000, 7 * USD),
    (RECENT, "web", "embeddings", "embed", "fresh", 8000, 0, 0, 160_000_000),
]


@pytest.fixture()
def ledger(tmp_path):
    path = tmp_path / "ledger.db"
    conn = db.open_db(path)  # the ledger's own schema, not a copy of its DDL
    for i, (created, project, endpoint, model, mode, prompt, cached, completion, billed) in enumerate(ROWS):
        conn.execute(
            "INSERT INTO receipts (receipt_id, created_utc, project, endpoint, model, served_mode, prompt_tokens,"
            " cached_tokens, cache_write_tokens, completion_tokens, billed_cost_pusd) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (f"rcpt_{i}", created, project, endpoint, model, mode, prompt, cached, 0, completion, billed),
        )
    conn.commit()
    conn.close()
    return path


@pytest.fixture()
def config_path(tmp_path):
    path = tmp_path / "providers.yaml"
    path.write_text(CONFIG)
    return path


def run(config_path, ledger, *args):
    result = CliRunner().invoke(compare_command, ["--config", str(config_path), "--db", str(ledger), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_usage_cost_splits_cached_reads_and_writes_out_of_the_prompt():
    price = Price(
        input=Decimal(1), output=Decimal(4), cached_input=Decimal("0.1"), cache_write=Decimal("1.25")
    )
    usage = Usage(
        requests=1, prompt_tokens=1000, cached_tokens=200, cache_write_tokens=100, completion_tokens=500
    )
    # 700 x 1 + 200 x 0.1 + 100 x 1.25 + 500 x 4 = 2845 per 1M
    assert usage_cost(usage, price) == Decimal("0.002845")
    no_cache_prices = Price(input=Decimal(2), output=Decimal(1))
    assert usage_cost(usage, no_cache_prices) == Decimal("0.0025")  # 1000 x 2 + 500 x 1


def test_workload_groups_fresh_and_replays_per_model_within_window_and_project(ledger):
    conn = sqlite3.connect(ledger)
    since = (NOW - dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    workload = load_workload(conn, since_utc=since, project="web")
    by_model = {m.model: m for m in workload.models}
    assert set(by_model) == {"model-a", "model-b"}
    assert by_model["model-a"].fresh == Usage(1, 1000, 200, 0, 500)
    assert by_model["model-a"].replayed == Usage(1, 1000, 200, 0, 500)
    assert workload.fresh == Usage(2, 4000, 200, 0, 600)
    assert workload.hit_rate == Decimal(1) / Decimal(3)
    assert workload.billed == Decimal("0.009202")
    assert (
        len(load_workload(conn).models) == 2 and load_workload(conn).fresh.requests == 4
    )  # all time, all projects


def test_repriced_figures_match_the_hand_computation(ledger):
    config = parse_config(load_yaml_text(CONFIG))
    workload = load_workload(sqlite3.connect(ledger), since_utc=RECENT[:10], project="web")
    result = {r.model: r for r in compare(workload, config.models.values(), Decimal("0.1"))}
    assert "free" not in result  # unpriced
    # model-a: fresh rows (3800 x 1 + 200 x 0.1 + 600 x 4) = 6220; replays 2820 per 1M
    assert result["model-a"].all_fresh == Decimal("0.00904")
    assert result["model-a"].with_cache == Decimal("0.006502")
    # model-b (no cached price, so cached reads at input): fresh rows 8600, replays 2500 per 1M
    assert result["model-b"].all_fresh == Decimal("0.0111")
    assert result["model-b"].with_cache == Decimal("0.00885")
    assert result["model-b"].assumed == ("cached_input",)


def test_compare_cli_json_gives_exact_strings(ledger, config_path):
    data = orjson.loads(run(config_path, ledger, "--project", "web", "--json", "--since", "30d"))
    assert data["requests"] == 3 and data["replayed"] == 1 and data["hit_rate"] == "0.3333"
    assert data["billed_usd"] == "0.009202"
    assert [m["model"] for m in data["models"]] == ["model-a", "model-b"]  # embedding and unpriced left out
    assert data["models"][0] == {
        "model": "model-a",
        "all_fresh_usd": "0.00904",
        "with_cache_usd": "0.006502",
        "assumed_input_price_for": [],
    }


def test_compare_cli_table_shows_workload_and_each_model(ledger, config_path):
    out = run(config_path, ledger, "--project", "web", "--models", "model-b,model-a")
    assert "3 requests, 1 replayed from the exact cache (33.3% hit rate); billed $0.009202" in out
    line_a = next(line for line in out.splitlines() if line.startswith("model-a") and "%" in line)
    assert "0.00904" in line_a and "0.006502" in line_a and "-29.3%" in line_a
    assert "no cached_input price: input price used" in out


def test_compare_cli_since_excludes_old_rows(ledger, config_path):
    all_time = orjson.loads(run(config_path, ledger, "--since", "365d", "--json"))
    recent = orjson.loads(run(config_path, ledger, "--since", "7d", "--json"))
    assert all_time["requests"] == recent["requests"] + 1


def test_compare_cli_reports_unknown_models_and_missing_ledger_cleanly(ledger, config_path, tmp_path):
    bad = CliRunner().invoke(
        compare_command, ["--config", str(config_path), "--db", str(ledger), "--models", "model-a,nope"]
    )
    assert bad.exit_code == 1 and "unknown model nope" in bad.output
    missing = CliRunner().invoke(
        compare_command, ["--config", str(config_path), "--db", str(tmp_path / "x.db")]
    )
    assert missing.exit_code == 1 and "no ledger" in missing.output
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).execute("CREATE TABLE t (x)").connection.close()
    no_table = CliRunner().invoke(compare_command, ["--config", str(config_path), "--db", str(empty)])
    assert no_table.exit_code == 1 and "cannot read receipts" in no_table.output
    assert "Traceback" not in bad.output + missing.output + no_table.output


def test_compare_cli_since_takes_weeks_and_iso_dates_like_every_other_command(ledger, config_path):
    recent = orjson.loads(run(config_path, ledger, "--since", "7d", "--json"))
    assert orjson.loads(run(config_path, ledger, "--since", "2w", "--json"))["requests"] == recent["requests"]
    month_ago = (NOW - dt.timedelta(days=30)).date().isoformat()
    by_date = orjson.loads(run(config_path, ledger, "--since", month_ago, "--json"))
    assert by_date["requests"] == recent["requests"]  # the 60-day-old row is before the date
    stamp = (NOW - dt.timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (
        orjson.loads(run(config_path, ledger, "--since", stamp, "--json"))["requests"]
        == recent["requests"] + 1
    )


def test_compare_cli_refuses_an_unreadable_since_cleanly(ledger, config_path):
    bad = CliRunner().invoke(
        compare_command, ["--config", str(config_path), "--db", str(ledger), "--since", "last tuesday"]
    )
    assert bad.exit_code == 2 and "--since" in bad.output and "Traceback" not in bad.output
