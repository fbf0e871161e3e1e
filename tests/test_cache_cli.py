"""`nmproxy cache explain|stats|purge` through click's CliRunner, against real SQLite files."""

from __future__ import annotations

import time

import orjson
import pytest
from click.testing import CliRunner

from nextmodel_proxy.cache import store as cache
from nextmodel_proxy.cache.key import cache_key, canonical_request
from nextmodel_proxy.cli.cache import cache_group
from nextmodel_proxy.ledger import schema as db

CONFIG = """
providers:
  openai: {kind: openai, base_url: "https://api.openai.com/v1", api_key_env: OPENAI_API_KEY}
models:
  fast: {provider: openai, upstream_id: gpt-4o-mini}
  slow: {provider: openai, upstream_id: gpt-4o}
routes:
  auto: {strategy: fallback, candidates: [fast, slow]}
cache: {scope: project}
"""

BODY = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "stream": True}


@pytest.fixture
def files(tmp_path):
    config = tmp_path / "providers.yaml"
    config.write_text(CONFIG)
    body = tmp_path / "body.json"
    body.write_bytes(orjson.dumps(BODY))
    return {"config": str(config), "body": str(body), "db": str(tmp_path / "cache.db")}


def run(*args, input=None):
    return CliRunner().invoke(cache_group, list(args), input=input, catch_exceptions=False)


def seed(path, rows):
    conn = db.open_db(path)
    for i, (model, age_s) in enumerate(rows):
        canonical = f"req{i}".encode()
        cache.store(
            conn,
            cache.CacheEntry(
                key=cache_key(canonical),
                scope="project:",
                provider="openai",
                model=model,
                endpoint="chat",
                canonical=canonical,
                response_kind="json",
                body=b"{}",
                usage=None,
                fresh_receipt_id=None,
                fresh_cost_pusd=None,
                created_at=time.time() - age_s,
            ),
        )
    return conn


def test_explain_resolves_the_model_through_the_config_and_prints_the_key(files):
    result = run("explain", files["body"], "--config", files["config"], "--project", "web")
    assert result.exit_code == 0, result.output
    expected = cache_key(
        canonical_request(
            BODY, scope="project:web", provider="openai", upstream_model="gpt-4o-mini", endpoint="chat"
        )
    )
    assert f"key: {expected}" in result.output
    assert '"upstream_model": "gpt-4o-mini"' in result.output
    assert "not in the key: model, stream" in result.output


def test_explain_reads_stdin_and_prints_json(files):
    result = run(
        "explain", "-", "--config", files["config"], "--scope", "global", "--json", input=orjson.dumps(BODY)
    )
    out = orjson.loads(result.output)
    assert orjson.loads(out["canonical"])["scope"] == "global"
    assert len(out["key"]) == 32


def test_explain_without_config_needs_explicit_target(files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NMPROXY_CONFIG", raising=False)
    (tmp_path / "providers.yaml").unlink()
    result = run("explain", files["body"])
    assert result.exit_code == 1 and "--provider and --upstream-model" in result.output
    ok = run("explain", files["body"], "--provider", "openai", "--upstream-model", "gpt-4o-mini")
    assert ok.exit_code == 0 and "key: " in ok.output


def test_explain_rejects_routes_unknown_models_and_bad_json(files, tmp_path):
    route = run("explain", files["body"], "--config", files["config"], "--model", "auto")
    assert route.exit_code == 1 and "is a route" in route.output and "fast, slow" in route.output
    unknown = run("explain", files["body"], "--config", files["config"], "--model", "nope")
    assert unknown.exit_code == 1 and "'nope' is not in the config" in unknown.output
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    broken = run("explain", str(bad), "--config", files["config"])
    assert broken.exit_code == 1 and "not valid JSON" in broken.output
    assert "Traceback" not in broken.output


def test_stats_text_and_json(files):
    conn = seed(files["db"], [("gpt-4o-mini", 0)])
    cache.record_hit(conn, cache_key(b"req0"), time.time(), 100, 2_500_000_000)
    cache.record_miss(conn)
    conn.close()
    text = run("stats", "--db", files["db"])
    assert text.exit_code == 0
    assert "hit rate               50.0%" in text.output
    assert "money saved (USD)      0.0025" in text.output
    data = orjson.loads(run("stats", "--db", files["db"], "--json").output)
    assert (data["entries"], data["hits"], data["misses"], data["money_saved_usd"]) == (1, 1, 1, "0.0025")


def test_stats_on_a_ledger_without_cache_tables_shows_zeros(tmp_path):
    path = tmp_path / "old.db"
    db.connect(path).close()
    data = orjson.loads(run("stats", "--db", str(path), "--json").output)
    assert data["entries"] == 0 and data["hit_rate"] is None


def test_stats_refuses_a_missing_database(tmp_path):
    result = run("stats", "--db", str(tmp_path / "none.db"))
    assert result.exit_code == 1 and "no ledger" in result.output


def test_purge_needs_a_filter(files):
    seed(files["db"], [("gpt-4o-mini", 0)]).close()
    result = run("purge", "--db", files["db"])
    assert result.exit_code == 1 and "--model M, --older-than 7d, or --all" in result.output


def test_purge_by_model_name_resolves_through_the_config(files):
    seed(files["db"], [("gpt-4o-mini", 0), ("gpt-4o", 0), ("gpt-4o-mini", 0)]).close()
    result = run("purge", "--db", files["db"], "--config", files["config"], "--model", "fast")
    assert result.output.strip() == "purged 2 cache entries"


def test_purge_older_than_and_all(files):
    seed(files["db"], [("m", 8 * 86400), ("m", 3600), ("m", 0)]).close()
    assert run("purge", "--db", files["db"], "--older-than", "7d").output.strip() == "purged 1 cache entry"
    assert run("purge", "--db", files["db"], "--older-than", "30m").output.strip() == "purged 1 cache entry"
    assert run("purge", "--db", files["db"], "--all").output.strip() == "purged 1 cache entry"
    bad = run("purge", "--db", files["db"], "--older-than", "soon")
    assert bad.exit_code == 1 and "duration" in bad.output
