"""The dashboard's data and pages through the running proxy: exact totals in any time zone, access, /metrics."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from click.testing import CliRunner
from dashboard_seed import receipt, seed, utc

from nextmodel_proxy.access.keys import KeySettings, create_key
from nextmodel_proxy.cli.main import main as nmproxy
from nextmodel_proxy.config import Config, load_config
from nextmodel_proxy.ledger import schema as db
from nextmodel_proxy.ledger.export import EXPORT_COLUMNS
from nextmodel_proxy.ui.routes import STATIC

VENDORED = {  # sha256 of the files as published in the npm package uplot@1.6.32
    "vendor/uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    "vendor/uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
    "vendor/uPlot.LICENSE": "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd",
}
METRIC_NAMES = {
    "nmproxy_requests_total",
    "nmproxy_request_duration_seconds",
    "nmproxy_upstream_duration_seconds",
    "nmproxy_ttft_seconds",
    "nmproxy_overhead_seconds",
    "nmproxy_tokens_total",
    "nmproxy_cost_usd_total",
    "nmproxy_cache_lookups_total",
    "nmproxy_budget_remaining_usd",
    "nmproxy_rejections_total",
    "nmproxy_fallbacks_total",
    "nmproxy_inflight_requests",
    "nmproxy_ledger_queue_depth",
    "nmproxy_ledger_write_errors_total",
    "nmproxy_build_info",
}


def spend_json(config: Config, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        nmproxy, ["spend", "--json", *args, "--config", str(config.source_path), "--db", config.ledger.path]
    )
    assert result.exit_code == 0, result.output
    return orjson.loads(result.output)


async def get(server: Any, path: str, **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with aiohttp.ClientSession() as session:
        async with session.get(server.make_url(path), allow_redirects=False, **kw) as resp:
            body = await resp.read()
            kind = resp.headers.get("Content-Type", "")
            return resp.status, orjson.loads(body) if "json" in kind else body.decode(), resp


@pytest.fixture
def config(write_config: Any) -> Config:
    return write_config()


async def test_day_totals_in_kolkata_equal_spend_for_the_same_instants_to_the_digit(
    config: Config, start_proxy: Any
) -> None:
    # 23:30 UTC on the 10th is 05:00 on the 11th in Asia/Kolkata (+05:30): it belongs to the 11th there.
    late = receipt(utc("2026-11-10T23:30:00Z"), prompt_tokens=3333, completion_tokens=777, project="alpha")
    edge_before = receipt(utc("2026-11-10T18:29:59.999999Z"), prompt_tokens=101, completion_tokens=7)
    edge_after = receipt(utc("2026-11-10T18:30:00Z"), prompt_tokens=202, completion_tokens=9, project="beta")
    replay = receipt(
        utc("2026-11-11T03:00:00Z"), served_mode="exact-cache", prompt_tokens=3333, completion_tokens=777
    )
    odd = receipt(utc("2026-11-11T12:00:00Z"), cost=Decimal("0.000000000001"), usage_source="estimated")
    seed(config.ledger.path, [edge_before, edge_after, late, replay, odd])
    server = await start_proxy(config)

    status, data, _ = await get(server, "/ui/api/overview?tz=Asia/Kolkata&from=2026-11-11&to=2026-11-11")
    assert status == 200
    assert (data["since_utc"], data["until_utc"]) == ("2026-11-10T18:30:00Z", "2026-11-11T18:30:00Z")
    cli = spend_json(config, "--since", data["since_utc"], "--until", data["until_utc"])["total"]
    r = data["range"]
    for field in (
        "count",
        "prompt_tokens",
        "completion_tokens",
        "upstream_cost_usd",
        "billed_cost_usd",
        "savings_usd",
    ):
        assert r[field] == cli[field], field
    assert r["count"] == 4  # edge_after, late, replay, odd: not edge_before (the 10th in Kolkata)
    expected_billed = sum(
        (x.billed_cost_usd for x in (edge_after, late, replay, odd)), Decimal(0)
    )  # computed here, not by the proxy
    assert Decimal(r["billed_cost_usd"]) == expected_billed
    assert (r["fresh"], r["exact_cache"], r["estimated"]) == (3, 1, 1)
    assert data["daily"]["days"] == ["2026-11-11"]

    # The same receipt in UTC is on the 10th.
    _, utc_day, _ = await get(server, "/ui/api/overview?tz=UTC&from=2026-11-10&to=2026-11-10")
    assert utc_day["range"]["count"] == 3
    by_project = {row["group"]: row["billed_cost_usd"] for row in data["breakdowns"]["project"]}
    cli_rows = spend_json(
        config, "--by", "project", "--since", data["since_utc"], "--until", data["until_utc"]
    )
    assert by_project == {row["group"]: row["billed_cost_usd"] for row in cli_rows["rows"]}


async def test_a_ledger_from_before_the_dashboard_is_backfilled_when_it_migrates(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    seed(path, [receipt(utc("2026-10-01T10:07:00Z")), receipt(utc("2026-10-01T10:14:59Z"), prompt_tokens=5)])
    conn = db.connect(path)
    # As if these receipts were written by a version without the dashboard's rollups.
    for table in ("spend_q15", "spend_d", "series_q15", "latency_q15", "latency_key_q15"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("DELETE FROM schema_migrations WHERE name = 'm050_dashboard_rollups'")
    assert db.migrate(conn) == ["m050_dashboard_rollups"]
    q15 = conn.execute("SELECT bucket, n, prompt_tokens FROM spend_q15").fetchall()
    day = conn.execute("SELECT bucket, n, prompt_tokens FROM spend_d").fetchall()
    latency = conn.execute("SELECT kind, SUM(n) FROM latency_q15 GROUP BY kind").fetchall()
    conn.close()
    assert q15 == [("2026-10-01T10:00", 2, 1005)] and day == [("2026-10-01", 2, 1005)]
    assert latency == [("latency", 2)]  # not streams: no time-to-first-token samples


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("tz=Mars/Olympus", "tz"),
        ("tz=../../etc/passwd", "tz"),
        ("from=2026-13-01", "from"),
        ("from=2026-11-10&to=2026-11-01", "to"),
    ],
)
async def test_a_bad_range_is_a_400_on_the_api_and_a_notice_in_the_page(
    config: Config, start_proxy: Any, query: str, param: str
) -> None:
    server = await start_proxy(config)
    status, body, _ = await get(server, f"/ui/api/overview?{query}")
    assert status == 400
    assert body["error"]["param"] == param and body["error"]["code"] == "invalid_value"
    status, page, _ = await get(server, f"/ui?{query}")
    assert status == 400 and 'class="problem"' in page and "Traceback" not in page


async def test_an_unknown_model_filter_is_refused_naming_it(config: Config, start_proxy: Any) -> None:
    server = await start_proxy(config)
    status, body, _ = await get(server, "/ui/api/receipts?model=no-such-model")
    assert status == 400 and body["error"]["param"] == "model"
    status, page, _ = await get(server, "/ui/receipts?model=no-such-model")
    assert status == 400 and "no-such-model" in page and 'class="problem"' in page


async def test_receipts_list_filters_and_pages_by_cursor(config: Config, start_proxy: Any) -> None:
    base = utc("2026-11-20T08:00:00Z")
    rows = [receipt(base + dt.timedelta(minutes=i), project="p1" if i % 2 else "p2") for i in range(7)]
    rows.append(receipt(base, model="demo-embed", status=400, error_code="bad_request", served_mode="error"))
    seed(config.ledger.path, rows)
    server = await start_proxy(config)
    q = "from=2026-11-20&to=2026-11-20&tz=UTC"
    seen: list[str] = []
    cursor = ""
    for _ in range(5):
        status, page, _ = await get(server, f"/ui/api/receipts?{q}&project=p1&limit=2{cursor}")
        assert status == 200
        seen += [r["receipt_id"] for r in page["data"]]
        assert all(r["project"] == "p1" for r in page["data"])
        if not page["next_cursor"]:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == [r.receipt_id for r in reversed(rows[:7]) if r.project == "p1"]
    _, errors, _ = await get(server, f"/ui/api/receipts?{q}&status=4xx")
    assert [r["receipt_id"] for r in errors["data"]] == [rows[-1].receipt_id]
    status, html, _ = await get(server, f"/ui/receipts?{q}&project=p1&limit=2")
    assert status == 200 and 'rel="next"' in html and rows[5].receipt_id in html


async def test_a_replay_page_links_to_its_fresh_receipt_and_receipt_urls_open_it_in_a_browser(
    write_config: Any, start_proxy: Any
) -> None:
    server = await start_proxy(write_config())
    async with openai.AsyncOpenAI(base_url=server.base, api_key="sk-x", max_retries=0) as client:
        ask = {"model": "demo-chat", "messages": [{"role": "user", "content": "dash"}], "temperature": 0}
        fresh = await client.chat.completions.with_raw_response.create(**ask)
        replay = await client.chat.completions.with_raw_response.create(**ask)
    fresh_id = fresh.headers["x-nextmodel-receipt-id"]
    replay_id = replay.headers["x-nextmodel-receipt-id"]
    assert replay.headers["x-nextmodel-served-mode"] == "exact-cache"
    status, page, _ = await get(server, f"/ui/receipts/{replay_id}")
    assert status == 200 and f'href="/ui/receipts/{fresh_id}"' in page and 'id="fresh-link"' in page
    url = replay.headers["x-nextmodel-receipt-url"]
    status, _, resp = await get(server, url[url.index("/v1/") :], headers={"Accept": "text/html,*/*"})
    assert status == 303 and resp.headers["Location"] == f"/ui/receipts/{replay_id}"
    status, as_json, _ = await get(server, url[url.index("/v1/") :])
    assert status == 200 and as_json["receipt_id"] == replay_id  # API clients still get JSON


async def test_pages_carry_a_strict_csp_and_an_empty_ledger_says_what_to_do(
    config: Config, start_proxy: Any
) -> None:
    server = await start_proxy(config)
    status, page, resp = await get(server, "/ui")
    assert status == 200
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert "No receipts yet" in page and "base_url" in page
    assert "<script>" not in page and " style=" not in page  # nothing inline for the CSP to block


async def test_export_csv_has_the_receipts_export_columns(config: Config, start_proxy: Any) -> None:
    seed(config.ledger.path, [receipt(utc("2026-11-21T10:00:00Z"))])
    server = await start_proxy(config)
    status, text, resp = await get(server, "/ui/export.csv?from=2026-11-21&to=2026-11-21&tz=UTC")
    assert status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    lines = text.splitlines()
    assert lines[0].split(",") == list(EXPORT_COLUMNS) and len(lines) == 2


async def test_with_keys_the_ui_needs_a_login_and_a_project_key_sees_only_itself(
    config: Config, start_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NMPROXY_ADMIN_KEY", raising=False)
    conn = db.open_db(config.ledger.path)
    admin, admin_rec = create_key(conn, KeySettings(name="ops", is_admin=True))
    mine, mine_rec = create_key(conn, KeySettings(name="app", project="p-app"))
    conn.close()
    day = utc("2026-11-22T09:00:00Z")
    seed(
        config.ledger.path,
        [receipt(day, key_id=mine_rec.key_id), receipt(day, key_id="other-key", prompt_tokens=9)],
    )
    server = await start_proxy(config)
    q = "?from=2026-11-22&to=2026-11-22&tz=UTC"

    status, _, resp = await get(server, f"/ui{q}")
    assert status == 303 and resp.headers["Location"].startswith("/ui/login?next=")
    status, body, _ = await get(server, f"/ui/api/overview{q}", headers={"Authorization": "Bearer nm-wrong"})
    assert status == 401 and body["error"]["code"] == "invalid_api_key"

    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.post(
            server.make_url("/ui/login"), data={"key": "nm-wrong", "next": "/ui"}
        ) as resp:
            assert resp.status == 401 and "problem" in await resp.text()
        login = {"key": mine.plaintext, "next": f"/ui{q}"}
        async with session.post(server.make_url("/ui/login"), data=login, allow_redirects=False) as resp:
            assert resp.status == 303
            cookie = resp.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and mine.plaintext not in cookie
        async with session.get(server.make_url(f"/ui/api/overview{q}")) as resp:
            data = await resp.json()
        assert data["range"]["count"] == 1
        assert [row["group"] for row in data["breakdowns"]["key"]] == [mine_rec.key_id]
        async with session.get(server.make_url(f"/ui{q}")) as resp:
            page = await resp.text()
        assert mine.plaintext not in page and admin.plaintext not in page
        async with session.post(server.make_url("/ui/logout"), allow_redirects=False) as resp:
            assert resp.status == 303
        async with session.get(server.make_url(f"/ui{q}"), allow_redirects=False) as resp:
            assert resp.status == 303  # signed out
    status, data, _ = await get(
        server, f"/ui/api/overview{q}", headers={"Authorization": f"Bearer {admin.plaintext}"}
    )
    assert status == 200 and data["range"]["count"] == 2
    assert admin_rec.key_id


async def test_metrics_names_are_frozen_and_count_what_was_served(config: Config, start_proxy: Any) -> None:
    server = await start_proxy(config)
    async with openai.AsyncOpenAI(base_url=server.base, api_key="sk-x", max_retries=0) as client:
        for _ in range(2):
            await client.chat.completions.create(
                model="demo-chat", messages=[{"role": "user", "content": "m"}], temperature=0
            )
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "m"}])
    status, text, resp = await get(server, "/metrics")
    assert status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert names == METRIC_NAMES
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    fresh = 'nmproxy_requests_total{endpoint="chat",model="demo-chat",provider="demo",served_mode="fresh",status_class="2xx"}'
    hit = fresh.replace('"fresh"', '"exact-cache"')
    assert float(samples[fresh]) == 1 and float(samples[hit]) == 1
    assert float(samples['nmproxy_cache_lookups_total{result="hit"}']) == 1
    assert float(samples["nmproxy_overhead_seconds_count"]) == 3  # the refusal has a receipt too


async def test_metrics_series_are_capped_and_overflow_into_other(write_config: Any, start_proxy: Any) -> None:
    server = await start_proxy(write_config("metrics: {max_series: 2}\n"))
    async with openai.AsyncOpenAI(base_url=server.base, api_key="sk-x", max_retries=0) as client:
        for model in ("fake-basic", "fake-tools", "fake-json", "r-quick"):
            await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "m"}])
    _, text, _ = await get(server, "/metrics")
    series = [line for line in text.splitlines() if line.startswith("nmproxy_requests_total{")]
    assert len(series) == 3 and any('model="other"' in s for s in series)
    assert sum(float(s.rsplit(" ", 1)[1]) for s in series) == 4  # nothing lost, only folded


async def test_metrics_need_the_admin_key_once_keys_exist(
    config: Config, start_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NMPROXY_ADMIN_KEY", raising=False)
    conn = db.open_db(config.ledger.path)
    admin, _ = create_key(conn, KeySettings(name="ops", is_admin=True))
    plain, _ = create_key(conn, KeySettings(name="app"))
    conn.close()
    server = await start_proxy(config)
    assert (await get(server, "/metrics", headers={"Authorization": "Bearer nm-bad"}))[0] == 401
    assert (await get(server, "/metrics", headers={"Authorization": f"Bearer {plain.plaintext}"}))[0] == 403
    assert (await get(server, "/metrics", headers={"Authorization": f"Bearer {admin.plaintext}"}))[0] == 200


def test_the_vendored_chart_library_is_the_published_one_with_its_licence() -> None:
    for name, digest in VENDORED.items():
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == digest, name
    assert "MIT License" in (STATIC / "vendor/uPlot.LICENSE").read_text()


def test_ui_and_metrics_config_are_checked_with_their_yaml_paths(tmp_path: Path) -> None:
    from nextmodel_proxy.config import ConfigError

    for text, path in (
        ("ui: {timezone: Mars/Base}\n", "ui.timezone"),
        ("metrics: {labels: [model]}\n", "metrics.labels.0"),
        ("metrics: {max_series: 0}\n", "metrics.max_series"),
    ):
        f = tmp_path / "p.yaml"
        f.write_text(text)
        with pytest.raises(ConfigError) as info:
            load_config(f)
        assert info.value.path == path


def test_rollup_tables_hold_quarter_hours_only(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    seed(path, [receipt(utc(f"2026-11-01T00:{m:02d}:00Z")) for m in (0, 14, 15, 44, 45, 59)])
    with sqlite3.connect(path) as conn:
        buckets = conn.execute("SELECT bucket, n FROM spend_q15 ORDER BY bucket").fetchall()
    assert buckets == [
        ("2026-11-01T00:00", 2),
        ("2026-11-01T00:15", 1),
        ("2026-11-01T00:30", 1),
        ("2026-11-01T00:45", 2),
    ]


async def test_a_multi_day_range_reads_whole_days_and_edges_and_still_equals_spend(
    config: Config, start_proxy: Any
) -> None:
    stamps = [
        "2026-11-08T18:29:00Z", "2026-11-08T18:31:00Z", "2026-11-09T00:00:00Z", "2026-11-09T12:00:00Z",
        "2026-11-10T23:59:59Z", "2026-11-11T18:15:00Z", "2026-11-11T18:30:00Z", "2026-11-12T01:00:00Z",
    ]  # fmt: skip
    seed(
        config.ledger.path,
        [receipt(utc(t), prompt_tokens=100 + i, key_id=f"k{i % 2}") for i, t in enumerate(stamps)],
    )
    server = await start_proxy(config)
    _, data, _ = await get(server, "/ui/api/overview?tz=Asia/Kolkata&from=2026-11-09&to=2026-11-11")
    cli = spend_json(config, "--since", data["since_utc"], "--until", data["until_utc"])
    assert data["range"]["count"] == cli["total"]["count"] == 5  # 18:31 on the 8th … 18:15 on the 11th
    assert data["range"]["billed_cost_usd"] == cli["total"]["billed_cost_usd"]
    by_key = {r["group"]: r["prompt_tokens"] for r in data["breakdowns"]["key"]}
    assert by_key == {"k1": 101 + 103 + 105, "k0": 102 + 104}
    assert sum(data["daily"]["fresh"]) == 5 and data["daily"]["days"] == [
        "2026-11-09",
        "2026-11-10",
        "2026-11-11",
    ]


async def test_hostile_dashboard_input_gets_4xx_and_no_open_redirect(
    config: Config, start_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NMPROXY_ADMIN_KEY", raising=False)
    conn = db.open_db(config.ledger.path)
    admin, _ = create_key(conn, KeySettings(name="ops", is_admin=True))
    conn.close()
    server = await start_proxy(config)
    bearer = {"Authorization": f"Bearer {admin.plaintext}"}
    for query in ("tz=" + "A" * 5000, "tz=%ff%fe", "from=9999999-01-01", "to=2026-02-30"):
        status, body, _ = await get(server, f"/ui/api/overview?{query}", headers=bearer)
        assert status == 400, query
    for query in ("cursor=%00%ff", "limit=10000000000", "limit=-1", "status=9xx", "mode=%ff"):
        status, _, _ = await get(server, f"/ui/api/receipts?{query}", headers=bearer)
        assert status == 400, query
    status, _, resp = await get(server, "/ui", cookies={"nmproxy_ui": "\u00ff" * 300})
    assert status == 303 and resp.headers["Location"].startswith("/ui/login")
    async with aiohttp.ClientSession() as session:
        for target in ("//evil.example/x", "https://evil.example", "/ui\\@evil", "/other"):
            form = {"key": admin.plaintext, "next": target}
            async with session.post(server.make_url("/ui/login"), data=form, allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/ui", target
        async with session.post(server.make_url("/ui/login"), data={"key": "x" * 100_000}) as r:
            assert r.status in (401, 413)
    status, _, _ = await get(server, "/ui/static/../../../../etc/passwd")
    assert status == 404
