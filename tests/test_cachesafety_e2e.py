"""CacheSafety Bench end to end: --live through the real proxy, --ledger on a ledger the proxy wrote, the HTML
report in a headless browser."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from click.testing import CliRunner

from nextmodel_proxy.cachesafety import dataset, live, metrics, strategies
from nextmodel_proxy.cli.main import main as nmproxy
from nextmodel_proxy.config import load_config

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def run(*args: str) -> Any:
    return CliRunner().invoke(nmproxy, ["bench", "cachesafety", *args])


def subset(tmp_path: Path, per_family: int = 2) -> tuple[Path, list[dataset.Pair]]:
    """The first pairs of every shipped family, as a trap file of its own."""
    lines = dataset.shipped_path().read_bytes().splitlines()
    seen: dict[str, int] = {}
    kept = []
    for raw in lines:
        family = orjson.loads(raw)["family"]
        if seen.get(family, 0) < per_family:
            seen[family] = seen.get(family, 0) + 1
            kept.append(raw)
    path = tmp_path / "subset.jsonl"
    path.write_bytes(b"\n".join(kept) + b"\n")
    pairs, problems = dataset.load([path])
    assert not problems
    return path, pairs


def test_live_on_a_subset_replays_exactly_what_the_exact_strategy_predicts(tmp_path):
    path, pairs = subset(tmp_path)
    config = load_config(ROOT / "providers.yaml")
    exact = metrics.matches(strategies.build(config, (), ())[0], pairs)
    result = run("--config", str(ROOT / "providers.yaml"), "--dataset", str(path), "--live", "--json")
    assert result.exit_code == 0, result.output
    section = orjson.loads(result.output)["live"]
    assert section["request_errors"] == 0, section["first_error"]
    assert section["bad_replays"] == 0 and section["header_disagreements"] == 0
    assert section["b_replayed"] == sum(exact) > 0
    assert section["a_stored"] == len(pairs)
    assert section["scope_checked"] == len(pairs) and section["scope_crossings"] == 0
    assert section["replay_checked_nonstream"] > len(pairs) and section["replay_mismatch_nonstream"] == 0
    assert section["stream_checked"] > 0 and section["replay_mismatch_stream"] == 0
    assert section["failures_replayed"] == 0
    assert section["errors_stored"] == 0 and section["cut_streams_stored"] == 0
    assert section["failure_requests"] == 12
    assert section["key_scope_checked"] > 10 and section["key_scope_crossings"] == 0


YAML = """
server: {{host: 127.0.0.1, port: 0}}
ledger: {{path: {db}}}
cache: {{scope: {scope}}}
providers:
  demo: {{kind: demo}}
models:
  demo-chat: {{provider: demo, price: {{input: 0.10, output: 0.40}}}}
"""


async def start(start_proxy: Any, tmp_path: Path, scope: str) -> Any:
    path = tmp_path / "providers.yaml"
    path.write_text(YAML.format(db=tmp_path / "ledger.db", scope=scope))
    return await start_proxy(load_config(path))


def pair(pid: str, same: bool, a: Any, b: Any) -> dataset.Pair:
    fields, reason = dataset.parse_line(
        orjson.dumps({"id": pid, "family": "f", "same_answer": same, "a": a, "b": b})
    )
    assert reason is None
    return dataset.Pair(source="test", **fields)


async def test_live_counts_a_bad_replay_and_a_scope_crossing_when_there_is_one(start_proxy, tmp_path):
    """The checks can fail: a mislabelled identical pair is a bad replay; a global-scope cache crosses projects."""
    proxy = await start(start_proxy, tmp_path, "global")
    body = {"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    section = await live.run_pairs([pair("x", False, body, body)], proxy.base)
    assert section["bad_replays"] == 1 and section["bad_replay_ids"] == ["x"]
    assert section["scope_crossings"] == 1
    assert section["failure_checks"].startswith("not run")


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path, timeout=5)) as conn:
        return conn.execute(sql).fetchall()


async def settle(ledger: Path, receipts: int, entries: int) -> None:
    deadline = time.monotonic() + 5
    while (
        rows(ledger, "SELECT count(*) FROM receipts")[0][0],
        rows(ledger, "SELECT count(*) FROM cache_entries")[0][0],
    ) != (receipts, entries):
        assert time.monotonic() < deadline, "the proxy did not write its receipts and entries in 5 s"
        await asyncio.sleep(0.02)


async def test_ledger_reports_realised_hits_and_unverified_ones_without_contents(start_proxy, tmp_path):
    proxy = await start(start_proxy, tmp_path, "project")
    ledger = tmp_path / "ledger.db"
    secret = "my account number is 99-1234"
    async with openai.AsyncOpenAI(
        base_url=proxy.base, api_key="sk-open", max_retries=0, timeout=10
    ) as client:

        async def ask(system: str, user: str, **kw: Any) -> None:
            messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
            await client.chat.completions.create(model="demo-chat", messages=messages, temperature=0, **kw)

        await ask("Be brief.", secret)
        await settle(ledger, 1, 1)
        await ask("Be brief.", secret)  # an exact hit
        await ask("Answer in French.", secret)  # last-message would replay: the system prompt differs
        await ask("Be brief.", secret.upper())  # normalized would replay: case only
        await ask("Be brief.", secret, max_tokens=5)  # last-message: parameters differ
        await settle(ledger, 5, 4)
    result = run("--ledger", "--db", str(ledger), "--json")
    assert result.exit_code == 0, result.output
    section = orjson.loads(result.output)
    assert (section["receipts"], section["exact_hits"], section["cache_lookups"]) == (5, 1, 5)
    assert section["realised_hit_rate"] == 0.2
    fresh = rows(ledger, "SELECT savings_pusd FROM receipts WHERE served_mode = 'exact-cache'")[0][0]
    assert section["usd_saved"] == metrics.pricing.format_usd(metrics.pricing.from_pusd(fresh))
    assert section["misses_with_known_request"] == 4
    by_name = {s["name"]: s for s in section["strategies"]}
    last = by_name["last-message"]
    assert last["unverified_hits"] == 2 and last["answer_changing"] == 2
    assert last["differing_fields"] == {"system": 1, "parameters": 1}
    normalized = by_name["normalized"]
    assert (normalized["unverified_hits"], normalized["answer_neutral"]) == (1, 1)
    assert secret not in result.output and "99-1234" not in result.output and "French" not in result.output
    table = run("--ledger", "--db", str(ledger))
    assert table.exit_code == 0 and "99-1234" not in table.output
    assert "last-message" in table.output and "Not readable from a ledger" in table.output
    shown = run("--ledger", "--db", str(ledger), "--show", "2", "--report", str(tmp_path / "r.html"))
    assert shown.exit_code == 0 and secret in shown.output and "Answer in French." in shown.output
    page = (tmp_path / "r.html").read_text()
    assert "last-message" in page and "99-1234" not in page and "French" not in page


def test_flags_that_only_go_with_ledger_are_refused_without_it(tmp_path):
    assert run("--show", "3").exit_code == 2
    both = run("--ledger", "--live", "--db", str(tmp_path / "x.db"))
    assert both.exit_code == 2 and "--ledger runs on your traffic alone" in both.output


def test_ledger_that_does_not_exist_is_a_clean_error(tmp_path):
    result = run("--ledger", "--db", str(tmp_path / "none.db"))
    assert result.exit_code == 1 and "no ledger at" in result.output and "Traceback" not in result.output


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (Debian: apt-get install chromium)")
def test_report_opens_in_headless_chromium_with_its_chart(tmp_path):
    path, _ = subset(tmp_path, per_family=3)
    report = tmp_path / "report.html"
    assert run("--dataset", str(path), "--report", str(report)).exit_code == 0
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", report.as_uri()],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    dom = done.stdout.decode()
    assert done.returncode == 0, done.stderr[-500:]
    assert '<svg id="chart"' in dom and dom.count('class="bad"') >= 7
    assert 'data-strategy="last-message"' in dom and "history-irrelevant" in dom
