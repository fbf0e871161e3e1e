"""`nmproxy receipts ...` and `nmproxy spend` on a real ledger written through Ledger."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import io
import sqlite3
from decimal import Decimal
from pathlib import Path

import click
import orjson
import pytest
from click.testing import CliRunner

from nextmodel_proxy.cli.receipts import receipts
from nextmodel_proxy.cli.spend import spend_cmd
from nextmodel_proxy.ledger.export import EXPORT_COLUMNS
from nextmodel_proxy.ledger.receipts import (
    QueryError,
    ReceiptFilter,
    list_query,
    query_receipts,
    receipt_to_json,
)
from nextmodel_proxy.ledger.spend import SPEND_BY, spend
from nextmodel_proxy.ledger.writer import Ledger
from nextmodel_proxy.timespec import format_utc, parse_time
from tests.test_ledger import make_receipt

NOW = dt.datetime.now(dt.UTC)
N = 60


@click.group()
def cli() -> None:
    """The commands as cli.py registers them."""


cli.add_command(receipts)
cli.add_command(spend_cmd)


def _receipt(i: int):
    """Receipts spread over five days, with awkward text, unknown costs and replays among them."""
    mode = ("fresh", "exact-cache", "error")[i % 3]
    unknown = i % 10 == 9
    billed = None if unknown else Decimal(i * 7919) / Decimal(10**9)
    return make_receipt(
        i,
        created_utc=format_utc(NOW - dt.timedelta(hours=2 * i)),
        served_mode=mode,
        project=("web", 'shop, "eu"', None)[i % 3],
        billed_cost_usd=billed,
        upstream_cost_usd=None if unknown else Decimal("0.005615"),
        fresh_cost_usd=None if unknown else Decimal("0.005615"),
        savings_usd=None if unknown else Decimal("0.000000000001") * i,
        error_code="line1\nline2" if i == 4 else None,
    )


@pytest.fixture(scope="module")
def ledger_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ledger") / "nextmodel.db"

    async def fill() -> None:
        ledger = Ledger(str(path))
        await ledger.start()
        await asyncio.gather(*(ledger.submit(_receipt(i)) for i in range(N)))
        await ledger.close()

    asyncio.run(fill())
    return path


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "providers.yaml"
    path.write_text("currency: {display: GBP, rates: {GBP: 0.79, VND: 26000}}\n")
    return path


def run(*args: str) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _export_csv(ledger_path: Path, config_path: Path, *filters: str) -> list[dict[str, str]]:
    result = run("receipts", "export", "--db", str(ledger_path), "--config", str(config_path), *filters)
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout, newline="")))
    assert rows[0] == list(EXPORT_COLUMNS)
    return [dict(zip(EXPORT_COLUMNS, row, strict=True)) for row in rows[1:]]


def _spend_json(ledger_path: Path, *args: str) -> dict:
    result = run("spend", "--db", str(ledger_path), "--json", *args)
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def test_csv_export_round_trips_every_receipt_exactly(ledger_path: Path, config_path: Path) -> None:
    rows = _export_csv(ledger_path, config_path)
    assert len(rows) == N
    by_id = {r["receipt_id"]: r for r in rows}
    conn = sqlite3.connect(ledger_path)
    for receipt_id, project, billed, error_code in conn.execute(
        "SELECT receipt_id, project, billed_cost_pusd, error_code FROM receipts"
    ):
        row = by_id[receipt_id]
        assert row["project"] == (project or "")
        assert row["error_code"] == (error_code or "")
        if billed is None:
            assert row["billed_cost_usd"] == "" and row["billed_cost_display"] == ""
        else:
            assert Decimal(row["billed_cost_usd"]) * 10**12 == billed
            assert Decimal(row["billed_cost_display"]) == Decimal(row["billed_cost_usd"]) * Decimal("0.79")
    assert rows[0]["tags"] == '["batch","n0"]' and rows[0]["stream"] == "true"


def test_export_billed_total_equals_spend_total_exactly(ledger_path: Path, config_path: Path) -> None:
    for window in (
        [],
        ["--since", "50h"],
        ["--since", format_utc(NOW - dt.timedelta(days=2)), "--until", "1d"],
    ):
        rows = _export_csv(ledger_path, config_path, *window)
        exported = sum((Decimal(r["billed_cost_usd"]) for r in rows if r["billed_cost_usd"]), Decimal(0))
        for by in ("project", "day", "mode"):
            total = _spend_json(ledger_path, "--by", by, *window)["total"]
            assert Decimal(total["billed_cost_usd"]) == exported
            assert total["count"] == len(rows)


def test_jsonl_export_writes_one_object_per_receipt_to_a_file(ledger_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    result = run(
        "receipts",
        "export",
        "--db",
        str(ledger_path),
        "--format",
        "jsonl",
        "--output",
        str(out),
        "--mode",
        "exact-cache",
    )
    assert result.exit_code == 0 and result.stdout == ""
    records = [orjson.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == N // 3 and all(r["served_mode"] == "exact-cache" for r in records)
    assert list(records[0]) == list(EXPORT_COLUMNS)


def test_list_filters_and_pages_with_a_cursor(ledger_path: Path) -> None:
    page1 = orjson.loads(
        run("receipts", "list", "--db", str(ledger_path), "--json", "--project", "web", "--limit", "5").stdout
    )
    assert page1["object"] == "list" and len(page1["data"]) == 5 and page1["next_cursor"]
    assert all(r["project"] == "web" for r in page1["data"])
    seen = {r["id"] for r in page1["data"]}
    cursor = page1["next_cursor"]
    while cursor:
        page = orjson.loads(
            run(
                "receipts",
                "list",
                "--db",
                str(ledger_path),
                "--json",
                "--project",
                "web",
                "--limit",
                "5",
                "--cursor",
                cursor,
            ).stdout
        )
        seen |= {r["id"] for r in page["data"]}
        cursor = page["next_cursor"]
    assert len(seen) == N // 3
    recent = orjson.loads(run("receipts", "list", "--db", str(ledger_path), "--json", "--since", "5h").stdout)
    assert len(recent["data"]) == 3  # created now, 2h and 4h ago


def test_list_prints_a_readable_table_in_the_display_currency(ledger_path: Path, config_path: Path) -> None:
    result = run("receipts", "list", "--db", str(ledger_path), "--config", str(config_path), "--limit", "3")
    lines = result.stdout.splitlines()
    assert result.exit_code == 0 and lines[0].split()[:3] == ["RECEIPT", "CREATED", "(UTC)"]
    assert "BILLED GBP" in lines[0] and len(lines) == 5 and lines[-1].startswith("more: --cursor ")


def test_show_prints_one_receipt_and_refuses_an_unknown_id(ledger_path: Path) -> None:
    receipt_id = (
        sqlite3.connect(ledger_path).execute("SELECT receipt_id FROM receipts WHERE seq = 3").fetchone()[0]
    )
    shown = orjson.loads(run("receipts", "show", receipt_id, "--db", str(ledger_path), "--json").stdout)
    assert (
        shown["id"] == receipt_id and shown["seq"] == 3 and shown["billed_cost_usd"] == "0.000015838"
    )  # i = 2
    missing = run("receipts", "show", "rcpt_nope", "--db", str(ledger_path))
    assert missing.exit_code == 1 and "no receipt 'rcpt_nope'" in missing.output


def test_spend_shows_totals_savings_and_the_display_currency(ledger_path: Path, config_path: Path) -> None:
    result = run("spend", "--db", str(ledger_path), "--config", str(config_path), "--by", "mode")
    assert result.exit_code == 0
    assert "SAVINGS USD" in result.stdout and "BILLED GBP" in result.stdout and "TOTAL" in result.stdout
    assert "1 USD = 0.79 GBP" in result.stdout
    data = _spend_json(ledger_path, "--config", str(config_path), "--by", "project")
    assert data["display_currency"] == "GBP"
    assert {r["group"] for r in data["rows"]} == {"web", 'shop, "eu"', None}
    assert data["total"]["unknown_cost"] == N // 10
    assert Decimal(data["total"]["savings_usd"]) == Decimal("0.000000000001") * sum(
        i for i in range(N) if i % 10 != 9
    )


def test_verify_exits_zero_on_an_intact_ledger_and_one_after_tampering(
    ledger_path: Path, tmp_path: Path
) -> None:
    ok = run("receipts", "verify", "--db", str(ledger_path))
    assert ok.exit_code == 0 and f"{N} receipts checked" in ok.stdout
    copy = tmp_path / "copy.db"
    with sqlite3.connect(ledger_path) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
        dst.execute("UPDATE receipts SET billed_cost_pusd = 0 WHERE seq = 12")
    victim = sqlite3.connect(copy).execute("SELECT receipt_id FROM receipts WHERE seq = 12").fetchone()[0]
    bad = run("receipts", "verify", "--db", str(copy))
    assert bad.exit_code == 1 and f"first bad receipt: {victim}" in bad.output


def test_a_missing_ledger_is_a_clean_error(tmp_path: Path) -> None:
    result = run("receipts", "list", "--db", str(tmp_path / "nope.db"))
    assert result.exit_code == 1 and "no ledger at" in result.output
    assert not (tmp_path / "nope.db").exists()


def test_bad_times_are_rejected_with_the_accepted_forms(ledger_path: Path) -> None:
    result = run("spend", "--db", str(ledger_path), "--since", "yesterday")
    assert result.exit_code == 2 and "30s, 15m, 24h, 7d, 2w" in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", dt.datetime(2026, 1, 31, 11, 59, 30, tzinfo=dt.UTC)),
        ("15m", dt.datetime(2026, 1, 31, 11, 45, tzinfo=dt.UTC)),
        ("24h", dt.datetime(2026, 1, 30, 12, 0, tzinfo=dt.UTC)),
        ("7d", dt.datetime(2026, 1, 24, 12, 0, tzinfo=dt.UTC)),
        ("2w", dt.datetime(2026, 1, 17, 12, 0, tzinfo=dt.UTC)),
        ("2026-01-02", dt.datetime(2026, 1, 2, tzinfo=dt.UTC)),
        ("2026-01-02T03:04:05Z", dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
        ("2026-01-02T03:04:05+02:00", dt.datetime(2026, 1, 2, 1, 4, 5, tzinfo=dt.UTC)),
        ("2026-01-02T03:04:05", dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
    ],
)
def test_times_parse_as_iso_8601_or_that_long_ago(text: str, expected: dt.datetime) -> None:
    assert parse_time(text, now=dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.UTC)) == expected


def test_receipt_json_money_is_exact_strings() -> None:
    data = receipt_to_json(dataclasses.replace(make_receipt(), billed_cost_usd=Decimal("0.000000000001")))
    assert data["billed_cost_usd"] == "0.000000000001" and data["display_rate"] == "0.79"


def _raw_totals(path: Path, column: str, lo: dt.datetime | None, hi: dt.datetime | None) -> dict:
    """The brute-force answer: sum the receipts table directly."""
    sql = (
        f"SELECT {column}, COUNT(*), COALESCE(SUM(billed_cost_pusd), 0), COALESCE(SUM(prompt_tokens), 0) "
        "FROM receipts WHERE created_utc >= ? AND created_utc < ? GROUP BY 1"
    )
    bounds = (format_utc(lo) if lo else "", format_utc(hi) if hi else "~")
    return {g: (n, Decimal(b) / 10**12, p) for g, n, b, p in sqlite3.connect(path).execute(sql, bounds)}


@pytest.mark.parametrize("by", ["project", "day", "mode", "key", "model"])
@pytest.mark.parametrize("window", [(None, None), (50, None), (100, 30), (13, 11), (None, 27)])
def test_spend_from_rollups_equals_a_raw_scan(ledger_path: Path, by: str, window: tuple) -> None:
    lo, hi = (None if h is None else NOW - dt.timedelta(hours=h) for h in window)
    rows = spend(sqlite3.connect(ledger_path), by, ReceiptFilter(since=lo, until=hi))
    got = {r.group: (r.count, r.billed_usd, r.prompt_tokens) for r in rows}
    assert got == _raw_totals(ledger_path, SPEND_BY[by][1], lo, hi)


def test_export_falls_back_to_the_configured_display_currency(tmp_path: Path, config_path: Path) -> None:
    path = tmp_path / "l.db"

    async def fill() -> None:
        ledger = Ledger(str(path))
        await ledger.start()
        await ledger.submit(
            make_receipt(0, display_currency=None, display_rate=None, billed_cost_usd=Decimal("2"))
        )
        await ledger.close()

    asyncio.run(fill())
    (row,) = _export_csv(path, config_path)
    assert (row["display_currency"], row["display_rate"], row["billed_cost_display"]) == (
        "GBP",
        "0.79",
        "1.58",
    )


def test_api_list_query_parses_filters_and_names_the_bad_parameter(ledger_path: Path) -> None:
    kwargs = list_query({"since": "2026-01-02", "mode": "fresh", "limit": "10", "project": "web"})
    assert kwargs == {
        "since": dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
        "mode": "fresh",
        "limit": 10,
        "project": "web",
    }
    rows, _cursor = query_receipts(sqlite3.connect(ledger_path), **kwargs)
    assert rows and all(r.project == "web" and r.served_mode == "fresh" for r in rows)
    for bad, param in (
        ({"since": "soon"}, "since"),
        ({"mode": "cached"}, "mode"),
        ({"limit": "0"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"cursor": "!!"}, "cursor"),
    ):
        with pytest.raises(QueryError) as info:
            list_query(bad)
        assert info.value.param == param
