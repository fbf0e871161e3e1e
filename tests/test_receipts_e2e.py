"""Issue 3 end to end: receipts written by the running proxy, read back through the API and the CLI."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import re
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from click.testing import CliRunner
from fake_upstream import _answer, _stream_events

from nextmodel_proxy.access.keys import KeySettings, create_key
from nextmodel_proxy.cli.main import main as cli_main
from nextmodel_proxy.config import load_config
from nextmodel_proxy.ledger import schema as db
from nextmodel_proxy.ledger.export import EXPORT_COLUMNS
from nextmodel_proxy.ledger.receipts import Receipt

PROMPT = "hello there world"  # 17 chars: the fake bills 9 + 17 // 4 = 13 prompt tokens
ANSWER = "Echo: hello there world"  # 23 chars: the fake bills 1 + 23 // 4 = 6 completion tokens
MESSAGES = [{"role": "user", "content": PROMPT}]
CREATED_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
# A model whose upstream id contains "cached": the fake then reports 8 of the prompt tokens as cached.
CACHED_MODEL = "  fake-cached: {provider: fake, price: {input: 0.15, output: 0.60, cached_input: 0.075}}\n"


def _with_cached_model(tmp_path: Path, write_config: Any, extra: str = "") -> Any:
    write_config(extra)
    path = tmp_path / "providers.yaml"
    path.write_text(path.read_text().replace("models:\n", "models:\n" + CACHED_MODEL, 1))
    return load_config(path)


async def _get(proxy: Any, path: str, **params: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{proxy.base}{path}", params=params) as r:
        return r.status, await r.json()


async def _receipt(proxy: Any, receipt_id: str, *, queued: bool = False) -> dict[str, Any]:
    """The receipt through GET /v1/receipts/{id}. A non-stream answer is sent only once its receipt is
    committed, so it must be there at once; a stream's is `queued` at its end: wait for it (bounded)."""
    deadline = time.monotonic() + (2.0 if queued else 0.0)
    while True:
        status, body = await _get(proxy, f"/receipts/{receipt_id}")
        if status == 200:
            return body
        assert status == 404 and time.monotonic() < deadline, (status, body)
        await asyncio.sleep(0.02)


async def _all_receipts(proxy: Any, **params: str) -> list[dict[str, Any]]:
    status, body = await _get(proxy, "/receipts", limit="1000", **params)
    assert status == 200, body
    assert body["next_cursor"] is None
    return body["data"]


async def _chat(client: openai.AsyncOpenAI, model: str = "gpt-test", **kw: Any) -> tuple[Any, dict[str, str]]:
    raw = await client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, **kw)
    return raw.parse(), dict(raw.headers)


def _rows(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        return conn.execute("SELECT count(*) FROM receipts").fetchone()[0]


def _cli(tmp_path: Path, *args: str) -> Any:
    return CliRunner().invoke(
        cli_main, [*args, "--db", str(tmp_path / "ledger.db"), "--config", str(tmp_path / "providers.yaml")]
    )


# --- one fresh call: every field --------------------------------------------------------------


async def test_fresh_call_receipt_has_every_field(client: Any, proxy: Any, fake_upstream: Any) -> None:
    completion, headers = await _chat(
        client,
        extra_headers={
            "x-request-id": "req-client-42",
            "x-nextmodel-project": "web",
            "x-nextmodel-team": "growth",
            "x-nextmodel-tags": "exp-a, nightly",
            "x-nextmodel-environment": "staging",
        },
    )
    rid = headers["x-nextmodel-receipt-id"]
    assert rid.startswith("rcpt_")
    assert headers["x-nextmodel-receipt-url"].endswith(f"/v1/receipts/{rid}")
    r = await _receipt(proxy, rid)

    assert (r["object"], r["id"], r["receipt_id"]) == ("receipt", rid, rid)
    assert CREATED_RE.match(r["created_utc"])
    assert r["request_id"] == "req-client-42"
    assert (r["project"], r["team"], r["environment"], r["tags"], r["key_id"]) == (
        "web",
        "growth",
        "staging",
        ["exp-a", "nightly"],
        None,
    )
    assert (r["endpoint"], r["model_requested"], r["model"], r["upstream_model"]) == (
        "chat",
        "gpt-test",
        "gpt-test",
        "fake-basic",
    )
    assert (r["provider"], r["served_mode"], r["stream"], r["status"], r["error_code"]) == (
        "fake",
        "fresh",
        False,
        200,
        None,
    )
    assert completion.usage.prompt_tokens == 13 and completion.usage.completion_tokens == 6
    assert (
        r["prompt_tokens"],
        r["completion_tokens"],
        r["cached_tokens"],
        r["cache_write_tokens"],
        r["reasoning_tokens"],
        r["usage_source"],
    ) == (13, 6, 0, 0, 0, "upstream")
    # 13 x 0.15 + 6 x 0.60 = 5.55 USD per 1M tokens
    assert (r["upstream_cost_usd"], r["billed_cost_usd"], r["fresh_cost_usd"], r["savings_usd"]) == (
        "0.00000555",
        "0.00000555",
        "0.00000555",
        "0.00",
    )
    assert r["cost_unknown_reason"] is None
    assert (r["display_currency"], r["display_rate"]) == ("USD", "1")
    assert re.fullmatch(r"[0-9a-f]{12}", r["price_version"])
    assert r["latency_ms"] > 0 and r["ttft_ms"] > 0 and r["ttft_ms"] <= r["latency_ms"]
    assert r["upstream_request_id"] == f"req_fake_{fake_upstream.state.calls}"
    assert r["reused_receipt_id"] is None
    assert r["attempts"][-1] == {"provider": "fake", "model": "gpt-test", "outcome": "200"}
    assert re.fullmatch(r"[0-9a-f]{64}", r["hash"]) and r["seq"] == 1
    assert (r["route"], r["cache_key"], r["cache_status"]) == (
        None,
        None,
        "bypass",
    )  # not deterministic: no cache
    assert set(r) == {"object", "id"} | {f.name for f in dataclasses.fields(Receipt)}  # every field is served

    assert headers["x-nextmodel-served-mode"] == "fresh" and headers["x-nextmodel-provider"] == "fake"
    assert headers["x-nextmodel-usage-source"] == r["usage_source"]
    assert headers["x-nextmodel-cost-usd"] == r["billed_cost_usd"]

    _, again = await _chat(client, model="gpt-test")
    second = await _receipt(proxy, again["x-nextmodel-receipt-id"])
    assert second["price_version"] == r["price_version"]  # same model and price, same version
    assert second["receipt_id"] > rid and second["prev_hash"] == r["hash"]
    _, other = await _chat(client, model="fake-basic")  # the same unit prices, but another model
    third = await _receipt(proxy, other["x-nextmodel-receipt-id"])
    assert third["price_version"] != r["price_version"]  # a version names one model's price


async def test_route_decision_is_recorded_in_attempts(client: Any, proxy: Any) -> None:
    _, headers = await _chat(client, model="resilient")
    r = await _receipt(proxy, headers["x-nextmodel-receipt-id"])
    assert r["route"] == "resilient" and r["model"] == "backup"
    assert r["attempts"][0]["route"] == "resilient" and r["attempts"][0]["decision"]
    outcomes = [(a["model"], a["outcome"]) for a in r["attempts"][1:]]
    assert outcomes[0][0] == "dead-model" and outcomes[0][1] != "200"
    assert outcomes[-1] == ("backup", "200")


# --- streams: include_usage injection and stripping -------------------------------------------


async def test_stream_asks_upstream_for_usage_and_hides_it_from_a_client_that_did_not(
    client: Any, proxy: Any, fake_upstream: Any
) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES, stream=True
    )
    chunks = [c async for c in raw.parse()]
    assert fake_upstream.state.requests[-1]["stream_options"] == {"include_usage": True}
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ANSWER
    r = await _receipt(proxy, raw.headers["x-nextmodel-receipt-id"], queued=True)
    assert (r["stream"], r["served_mode"], r["status"], r["error_code"]) == (True, "fresh", 200, None)
    assert (r["prompt_tokens"], r["completion_tokens"], r["usage_source"]) == (13, 6, "upstream")
    assert r["billed_cost_usd"] == "0.00000555"
    assert r["ttft_ms"] > 0 and r["latency_ms"] >= r["ttft_ms"]


async def test_stream_client_that_asked_for_usage_gets_the_chunk_unchanged(
    client: Any, proxy: Any, fake_upstream: Any
) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in raw.parse()]
    assert fake_upstream.state.requests[-1]["stream_options"] == {"include_usage": True}
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0].choices == [] and chunks[-1] is usage_chunks[0]
    assert usage_chunks[0].usage.model_dump(exclude_none=True) == {
        "prompt_tokens": 13,
        "completion_tokens": 6,
        "total_tokens": 19,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    r = await _receipt(proxy, raw.headers["x-nextmodel-receipt-id"], queued=True)
    assert (r["prompt_tokens"], r["completion_tokens"], r["usage_source"]) == (13, 6, "upstream")


# --- cached tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_deepseek_cache_hits_are_priced_at_the_cached_rate(
    client: Any, proxy: Any, stream: bool
) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="fake-deepseek", messages=MESSAGES, stream=stream
    )
    if stream:
        assert [c.usage async for c in raw.parse() if c.usage is not None] == []
    r = await _receipt(proxy, raw.headers["x-nextmodel-receipt-id"], queued=stream)
    assert (r["prompt_tokens"], r["cached_tokens"], r["completion_tokens"], r["stream"]) == (13, 8, 6, stream)
    # 5 uncached x 0.28 + 8 cached x 0.028 + 6 x 0.42 = 1.4 + 0.224 + 2.52 = 4.144 per 1M
    assert r["billed_cost_usd"] == r["upstream_cost_usd"] == "0.000004144"
    if not stream:
        assert raw.headers["x-nextmodel-cost-usd"] == "0.000004144"


async def test_openai_cached_tokens_are_part_of_prompt_and_billed_once(
    tmp_path: Path, write_config: Any, start_proxy: Any
) -> None:
    proxy = await start_proxy(_with_cached_model(tmp_path, write_config))
    async with openai.AsyncOpenAI(base_url=proxy.base, api_key="x", max_retries=0) as client:
        completion, headers = await _chat(client, model="fake-cached")
    assert completion.usage.prompt_tokens_details.cached_tokens == 8
    r = await _receipt(proxy, headers["x-nextmodel-receipt-id"])
    assert (r["prompt_tokens"], r["cached_tokens"], r["completion_tokens"]) == (13, 8, 6)
    # 5 uncached x 0.15 + 8 cached x 0.075 + 6 x 0.60 = 0.75 + 0.6 + 3.6 = 4.95 per 1M (not 13 x 0.15 + ...)
    assert r["billed_cost_usd"] == "0.00000495"


# --- no usage, no price, errors, malformed --------------------------------------------------------


async def test_provider_without_usage_gets_an_estimated_receipt(client: Any, proxy: Any) -> None:
    completion, headers = await _chat(client, model="fake-nousage")
    assert completion.usage is None
    r = await _receipt(proxy, headers["x-nextmodel-receipt-id"])
    assert r["usage_source"] == headers["x-nextmodel-usage-source"] == "estimated"
    assert 3 <= r["prompt_tokens"] <= 20 and r["completion_tokens"] == 6  # ceil(23 / 4)
    expected = (Decimal(r["prompt_tokens"]) * 1 + Decimal(6) * 2) / Decimal(10**6)
    assert Decimal(r["billed_cost_usd"]) == expected


async def test_stream_without_usage_is_estimated_too(client: Any, proxy: Any) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="fake-nousage", messages=MESSAGES, stream=True
    )
    [c async for c in raw.parse()]
    r = await _receipt(proxy, raw.headers["x-nextmodel-receipt-id"], queued=True)
    assert (r["usage_source"], r["completion_tokens"]) == ("estimated", 6)
    assert r["prompt_tokens"] > 0


async def test_model_without_price_has_an_explicitly_unknown_cost(client: Any, proxy: Any) -> None:
    _, headers = await _chat(client, model="fake-noprice")
    r = await _receipt(proxy, headers["x-nextmodel-receipt-id"])
    assert (r["prompt_tokens"], r["usage_source"]) == (13, "upstream")
    assert (r["upstream_cost_usd"], r["billed_cost_usd"], r["fresh_cost_usd"], r["savings_usd"]) == (
        None,
        None,
        None,
        None,
    )
    assert "fake-noprice" in r["cost_unknown_reason"]
    assert r["price_version"] is None
    assert headers["x-nextmodel-cost-usd"] == "unknown"


async def test_upstream_500_gets_an_error_receipt_costing_nothing(client: Any, proxy: Any) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        await _chat(client, model="fake-error-500")
    headers = info.value.response.headers
    r = await _receipt(proxy, headers["x-nextmodel-receipt-id"])
    assert (r["served_mode"], r["status"], r["error_code"], r["provider"]) == (
        "error",
        500,
        "server_error",
        "fake",
    )
    assert (r["upstream_cost_usd"], r["billed_cost_usd"], r["fresh_cost_usd"], r["savings_usd"]) == (
        "0.00",
        "0.00",
        "0.00",
        "0.00",
    )
    assert r["usage_source"] == "none" and r["prompt_tokens"] is None
    assert r["attempts"][-1]["outcome"] == "500"
    assert headers["x-nextmodel-served-mode"] == "error" and headers["x-nextmodel-cost-usd"] == "0.00"


async def test_unknown_model_is_a_404_with_an_error_receipt(client: Any, proxy: Any) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await _chat(client, model="no-such-model")
    assert info.value.code == "model_not_found"
    r = await _receipt(proxy, info.value.response.headers["x-nextmodel-receipt-id"])
    assert (r["served_mode"], r["status"], r["error_code"]) == ("error", 404, "model_not_found")
    assert (r["model_requested"], r["model"], r["provider"]) == ("no-such-model", None, None)
    assert r["billed_cost_usd"] == "0.00"
    headers = info.value.response.headers
    assert (headers["x-nextmodel-served-mode"], headers["x-nextmodel-usage-source"]) == ("error", "none")
    assert headers["x-nextmodel-cost-usd"] == "0.00"


async def test_malformed_request_gets_no_receipt(client: Any, proxy: Any, tmp_path: Path) -> None:
    await _chat(client)
    before = _rows(tmp_path)
    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"{proxy.base}/chat/completions", data=b"{not json", headers={"Content-Type": "application/json"}
        ) as resp:
            assert resp.status == 400
            assert "x-nextmodel-receipt-id" not in resp.headers
            assert (await resp.json())["error"]["type"] == "invalid_request_error"
        async with s.post(f"{proxy.base}/chat/completions", json={"messages": MESSAGES}) as resp:
            assert resp.status == 400  # no model named
    assert _rows(tmp_path) == before == 1
    assert len(await _all_receipts(proxy)) == 1


# --- the list API -----------------------------------------------------------------------------------


async def _mixed_traffic(client: Any) -> list[str]:
    ids = []
    for project, model in (
        ("a", "gpt-test"),
        ("b", "gpt-test"),
        ("a", "fake-deepseek"),
        ("b", "fake-basic"),
        ("a", "gpt-test"),
    ):
        _, headers = await _chat(client, model=model, extra_headers={"x-nextmodel-project": project})
        ids.append(headers["x-nextmodel-receipt-id"])
    with pytest.raises(openai.InternalServerError) as info:
        await _chat(client, model="fake-error-500", extra_headers={"x-nextmodel-project": "a"})
    ids.append(info.value.response.headers["x-nextmodel-receipt-id"])
    return ids


async def test_receipts_list_filters(client: Any, proxy: Any) -> None:
    ids = await _mixed_traffic(client)
    everything = await _all_receipts(proxy, since="1h")
    assert [r["id"] for r in everything] == ids[::-1]  # newest first
    assert await _all_receipts(proxy, since="2099-01-01T00:00:00Z") == []
    assert [r["id"] for r in await _all_receipts(proxy, until="1h")] == []
    assert {r["id"] for r in await _all_receipts(proxy, project="a")} == {ids[0], ids[2], ids[4], ids[5]}
    assert {r["id"] for r in await _all_receipts(proxy, model="gpt-test")} == {ids[0], ids[1], ids[4]}
    assert [r["id"] for r in await _all_receipts(proxy, mode="error")] == [ids[5]]
    assert [r["id"] for r in await _all_receipts(proxy, project="b", model="fake-basic", mode="fresh")] == [
        ids[3]
    ]


async def test_receipts_list_pagination_covers_every_row_once(client: Any, proxy: Any) -> None:
    ids = await _mixed_traffic(client)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": "4"} | ({"cursor": cursor} if cursor else {})
        status, body = await _get(proxy, "/receipts", **params)
        assert status == 200 and body["object"] == "list" and len(body["data"]) <= 4
        seen += [r["id"] for r in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert seen == ids[::-1] and pages == 2


@pytest.mark.parametrize(
    ("param", "value"),
    [("since", "yesterday-ish"), ("until", "12x"), ("limit", "0"), ("cursor", "garbage"), ("mode", "cheap")],
)
async def test_bad_list_parameter_is_an_openai_400_naming_it(proxy: Any, param: str, value: str) -> None:
    status, body = await _get(proxy, "/receipts", **{param: value})
    assert status == 400
    assert body["error"]["param"] == param and param in body["error"]["message"]
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["code"] == "invalid_value"


# --- the CLI on the proxy's ledger --------------------------------------------------------------------


async def test_csv_export_round_trips_and_totals_equal_spend(client: Any, proxy: Any, tmp_path: Path) -> None:
    ids = await _mixed_traffic(client)
    await _chat(client, model="fake-noprice")
    api = {r["id"]: r for r in await _all_receipts(proxy)}
    out = tmp_path / "export.csv"
    result = _cli(tmp_path, "receipts", "export", "--format", "csv", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes().count(b"\r\n") == 8  # RFC 4180 line ends: header + 7 rows
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    records = [dict(zip(EXPORT_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert [rec["receipt_id"] for rec in records] == list(api)[::-1]  # oldest first
    assert ids == [rec["receipt_id"] for rec in records][:6]
    for rec in records:
        from_api = api[rec["receipt_id"]]
        for col in ("upstream_cost_usd", "billed_cost_usd", "fresh_cost_usd", "savings_usd"):
            assert rec[col] == (from_api[col] or "")
            if rec[col]:
                assert Decimal(rec[col]) == Decimal(from_api[col])
        assert (rec["project"], rec["model"], rec["served_mode"]) == (
            from_api["project"] or "",
            from_api["model"] or "",
            from_api["served_mode"],
        )
        assert rec["prompt_tokens"] == (
            "" if from_api["prompt_tokens"] is None else str(from_api["prompt_tokens"])
        )
    assert records[-1]["billed_cost_usd"] == "" and "fake-noprice" in records[-1]["cost_unknown_reason"]

    total = sum((Decimal(rec["billed_cost_usd"]) for rec in records if rec["billed_cost_usd"]), Decimal(0))
    by_hand = (
        Decimal("0.00000555") * 3 + Decimal("0.000004144") + Decimal("0.00000555")
    )  # 3 gpt-test + ds + basic
    assert total == by_hand
    spend = _cli(tmp_path, "spend", "--json")
    assert spend.exit_code == 0, spend.output
    report = orjson.loads(spend.output)
    assert Decimal(report["total"]["billed_cost_usd"]) == total
    assert report["total"]["count"] == len(records) and report["total"]["unknown_cost"] == 1

    jsonl = _cli(tmp_path, "receipts", "export", "--format", "jsonl", "--project", "a")
    assert jsonl.exit_code == 0, jsonl.output
    listed = _cli(tmp_path, "receipts", "list", "--json", "--limit", "100")
    assert [r["id"] for r in orjson.loads(listed.output)["data"]] == list(api)  # the API's list, newest first
    errors = _cli(tmp_path, "receipts", "export", "--format", "jsonl", "--since", "1h", "--mode", "error")
    assert [orjson.loads(line)["receipt_id"] for line in errors.output.splitlines()] == [ids[5]]
    lines = [orjson.loads(line) for line in jsonl.output.splitlines()]
    assert [rec["receipt_id"] for rec in lines] == [ids[0], ids[2], ids[4], ids[5]]
    assert all(list(rec) == list(EXPORT_COLUMNS) for rec in lines)
    assert lines[1]["billed_cost_usd"] == "0.000004144" and lines[1]["cached_tokens"] == 8


async def test_verify_passes_then_names_a_tampered_receipt(client: Any, proxy: Any, tmp_path: Path) -> None:
    ids = await _mixed_traffic(client)
    ok = _cli(tmp_path, "receipts", "verify")
    assert ok.exit_code == 0, ok.output
    assert "6 receipts checked" in ok.output
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        conn.execute(
            "UPDATE receipts SET billed_cost_pusd = billed_cost_pusd - 1 WHERE receipt_id = ?", (ids[2],)
        )
    bad = _cli(tmp_path, "receipts", "verify")
    assert bad.exit_code == 1
    assert ids[2] in bad.output and ids[1] not in bad.output


# --- display currency -------------------------------------------------------------------------------


async def test_display_currency_is_recorded_and_shown_beside_usd(
    tmp_path: Path, write_config: Any, start_proxy: Any
) -> None:
    proxy = await start_proxy(write_config("currency: {display: GBP, rates: {GBP: 0.79}}\n"))
    async with openai.AsyncOpenAI(base_url=proxy.base, api_key="x", max_retries=0) as client:
        _, headers = await _chat(client, extra_headers={"x-nextmodel-project": "web"})
    r = await _receipt(proxy, headers["x-nextmodel-receipt-id"])
    assert (r["display_currency"], r["display_rate"]) == ("GBP", "0.79")
    assert r["billed_cost_usd"] == headers["x-nextmodel-cost-usd"] == "0.00000555"  # money stays USD

    table = _cli(tmp_path, "spend")
    assert table.exit_code == 0, table.output
    assert "BILLED USD" in table.output and "BILLED GBP" in table.output
    assert "0.00000555" in table.output and "1 USD = 0.79 GBP" in table.output
    report = orjson.loads(_cli(tmp_path, "spend", "--json").output)
    assert (report["display_currency"], report["display_rate"]) == ("GBP", "0.79")
    assert Decimal(report["total"]["billed_cost_display"]) == Decimal("0.00000555") * Decimal("0.79")
    export = list(csv.DictReader(io.StringIO(_cli(tmp_path, "receipts", "export").output, newline="")))
    assert (export[0]["display_currency"], export[0]["display_rate"]) == ("GBP", "0.79")
    assert Decimal(export[0]["billed_cost_display"]) == Decimal("0.0000043845")


async def test_budget_refusal_gets_a_receipt_costing_nothing(
    tmp_path: Path, write_config: Any, start_proxy: Any, fake_upstream: Any
) -> None:
    proxy = await start_proxy(write_config("projects: {tiny: {budget: {amount: 0.000001, period: day}}}\n"))
    async with openai.AsyncOpenAI(base_url=proxy.base, api_key="x", max_retries=0) as client:
        with pytest.raises(openai.RateLimitError) as info:
            await _chat(client, extra_headers={"x-nextmodel-project": "tiny"})
    assert info.value.code == "budget_exceeded" and fake_upstream.state.calls == 0
    r = await _receipt(proxy, info.value.response.headers["x-nextmodel-receipt-id"])
    assert (r["project"], r["status"], r["error_code"], r["served_mode"]) == (
        "tiny",
        429,
        "budget_exceeded",
        "error",
    )
    assert (r["model"], r["billed_cost_usd"], r["upstream_cost_usd"]) == ("gpt-test", "0.00", "0.00")
    assert r["attempts"] == [{"route": None, "decision": r["attempts"][0]["decision"]}]
    assert info.value.response.headers["x-nextmodel-cost-usd"] == "0.00"


async def test_stream_cut_by_the_upstream_is_estimated_not_free(client: Any, proxy: Any) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="fake-broken", messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APIError):
        [c async for c in raw.parse()]
    r = await _receipt(proxy, raw.headers["x-nextmodel-receipt-id"], queued=True)
    assert (r["stream"], r["served_mode"], r["status"], r["error_code"]) == (
        True,
        "error",
        502,
        "upstream_unreachable",
    )
    # The upstream answered and was cut off after "Echo: hello th" (14 chars relayed): it consumed the prompt and
    # generated tokens, so the receipt estimates them instead of billing a silent 0.
    assert (r["usage_source"], r["completion_tokens"]) == ("estimated", 4)  # ceil(14 / 4)
    assert r["prompt_tokens"] > 0
    expected = (Decimal(r["prompt_tokens"]) * 1 + Decimal(4) * 2) / Decimal(10**6)
    assert Decimal(r["billed_cost_usd"]) == Decimal(r["upstream_cost_usd"]) == expected > 0


# --- cache replays ------------------------------------------------------------------------------------


async def _until_replayed(client: Any, model: str = "gpt-test", **kw: Any) -> Any:
    """Repeat a request until the proxy replays it (the cache write is queued behind the first receipt)."""
    deadline = time.monotonic() + 2.0
    while True:
        raw = await client.chat.completions.with_raw_response.create(
            model=model, messages=MESSAGES, temperature=0, **kw
        )
        if raw.headers["x-nextmodel-served-mode"] == "exact-cache":
            return raw
        assert time.monotonic() < deadline, "the answer was never replayed from the cache"
        if kw.get("stream"):
            [c async for c in raw.parse()]
        await asyncio.sleep(0.02)


async def test_cache_replay_receipt_bills_the_replay_ratio_and_points_at_the_fresh_call(
    client: Any, proxy: Any, fake_upstream: Any, tmp_path: Path
) -> None:
    first = await client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES, temperature=0
    )
    fresh_id = first.headers["x-nextmodel-receipt-id"]
    replayed = await _until_replayed(client)
    assert replayed.parse().choices[0].message.content == ANSWER
    assert fake_upstream.state.calls == 1
    r = await _receipt(proxy, replayed.headers["x-nextmodel-receipt-id"])
    assert (r["served_mode"], r["reused_receipt_id"], r["cache_status"], r["status"]) == (
        "exact-cache",
        fresh_id,
        "hit",
        200,
    )
    assert (r["prompt_tokens"], r["completion_tokens"], r["usage_source"]) == (13, 6, "cache")
    # fresh 0.00000555; billed at the default replay ratio 0.1; nothing went upstream
    assert (r["upstream_cost_usd"], r["billed_cost_usd"], r["fresh_cost_usd"], r["savings_usd"]) == (
        "0.00",
        "0.000000555",
        "0.00000555",
        "0.000004995",
    )
    assert replayed.headers["x-nextmodel-cost-usd"] == "0.000000555"
    assert replayed.headers["x-nextmodel-usage-source"] == "cache"
    report = orjson.loads(_cli(tmp_path, "spend", "--by", "mode", "--json").output)
    assert report["total"]["billed_cost_usd"] == "0.000006105"  # 0.00000555 + 0.000000555
    assert report["total"]["savings_usd"] == "0.000004995"
    assert [row["id"] for row in await _all_receipts(proxy, mode="exact-cache")] == [r["id"]]


async def test_stream_replay_receipt_has_the_stored_usage(
    client: Any, proxy: Any, fake_upstream: Any
) -> None:
    first = await client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES, temperature=0, stream=True
    )
    [c async for c in first.parse()]
    replayed = await _until_replayed(client, stream=True)
    chunks = [c async for c in replayed.parse()]
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ANSWER
    r = await _receipt(proxy, replayed.headers["x-nextmodel-receipt-id"], queued=True)
    assert (r["served_mode"], r["stream"], r["usage_source"], r["prompt_tokens"], r["completion_tokens"]) == (
        "exact-cache",
        True,
        "cache",
        13,
        6,
    )
    # A repeat sent before the first stream's cache write committed also went upstream and stored its
    # answer; the replay points at whichever fresh stream stored it.
    reused = await _receipt(proxy, r["reused_receipt_id"], queued=True)
    assert (reused["served_mode"], reused["stream"], reused["model"]) == ("fresh", True, "gpt-test")
    assert fake_upstream.state.calls >= 1 and reused["fresh_cost_usd"] == r["fresh_cost_usd"] == "0.00000555"
    assert r["billed_cost_usd"] == "0.000000555"


@pytest.mark.parametrize("stream", [False, True])
async def test_replay_of_an_answer_without_usage_is_estimated_like_its_fresh_call(
    client: Any, proxy: Any, stream: bool
) -> None:
    first = await client.chat.completions.with_raw_response.create(
        model="fake-nousage", messages=MESSAGES, temperature=0, stream=stream
    )
    if stream:
        [c async for c in first.parse()]
    replayed = await _until_replayed(client, "fake-nousage", stream=stream)
    if stream:
        [c async for c in replayed.parse()]
    fresh = await _receipt(proxy, first.headers["x-nextmodel-receipt-id"], queued=stream)
    r = await _receipt(proxy, replayed.headers["x-nextmodel-receipt-id"], queued=stream)
    assert fresh["usage_source"] == r["usage_source"] == "estimated"
    assert (r["served_mode"], r["prompt_tokens"], r["completion_tokens"]) == (
        "exact-cache",
        fresh["prompt_tokens"],
        fresh["completion_tokens"],
    )
    # a known cost (not "no usage"): the fresh call's estimate, billed at the replay ratio
    assert r["cost_unknown_reason"] is None and r["fresh_cost_usd"] == fresh["billed_cost_usd"]
    assert Decimal(r["billed_cost_usd"]) == Decimal(fresh["billed_cost_usd"]) * Decimal("0.1")


# --- the bytes a stream client sees ---------------------------------------------------------------------


async def _sse_events(proxy: Any, body: dict[str, Any]) -> list[bytes]:
    async with aiohttp.ClientSession() as s, s.post(f"{proxy.base}/chat/completions", json=body) as resp:
        assert resp.status == 200
        raw = await resp.read()
    return [event + b"\n\n" for event in raw.split(b"\n\n") if event.strip() and not event.startswith(b":")]


@pytest.mark.parametrize("options", [None, {"include_usage": False}])
async def test_stream_bytes_are_the_upstreams_minus_the_injected_usage_chunk(
    proxy: Any, options: Any
) -> None:
    body: dict[str, Any] = {"model": "fake-basic", "messages": MESSAGES, "stream": True}
    if options is not None:
        body["stream_options"] = options
    events = await _sse_events(proxy, body)
    upstream = _stream_events(
        "fake-basic", {**body, "stream_options": {"include_usage": True}}, _answer("fake-basic", body)
    )
    assert len(upstream) == len(events) + 1 and b'"usage"' in upstream[-2]
    assert events == upstream[:-2] + upstream[-1:]


async def test_stream_bytes_include_the_usage_chunk_unchanged_when_asked(proxy: Any) -> None:
    body = {
        "model": "fake-basic",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert await _sse_events(proxy, body) == _stream_events("fake-basic", body, _answer("fake-basic", body))


# --- embeddings ----------------------------------------------------------------------------------------


async def test_embeddings_receipt(client: Any, proxy: Any) -> None:
    raw = await client.embeddings.with_raw_response.create(
        model="fake-embed", input=["one two three", "four"]
    )
    r = await _receipt(proxy, raw.headers["x-nextmodel-receipt-id"])
    # the fake counts max(1, len // 4) per input: 3 + 1 = 4 tokens at 0.02 per 1M
    assert (r["endpoint"], r["prompt_tokens"], r["completion_tokens"], r["usage_source"]) == (
        "embeddings",
        4,
        0,
        "upstream",
    )
    assert r["billed_cost_usd"] == raw.headers["x-nextmodel-cost-usd"] == "0.00000008"


# --- keys: attribution, refusals, who may read which receipt ---------------------------------------------


def _make_keys(path: Path) -> dict[str, Any]:
    conn = db.open_db(path)
    try:
        conn.execute("BEGIN")
        made = {
            name: create_key(conn, settings)
            for name, settings in (
                ("web", KeySettings(project="web", team="growth", rpm=1)),
                ("shop", KeySettings(project="shop")),
                ("admin", KeySettings(is_admin=True)),
            )
        }
        conn.execute("COMMIT")
    finally:
        conn.close()
    return {name: (new.plaintext, record.key_id) for name, (new, record) in made.items()}


async def _get_as(proxy: Any, secret: str, path: str, **params: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {secret}"}) as s,
        s.get(f"{proxy.base}{path}", params=params) as r,
    ):
        return r.status, await r.json()


async def test_keyed_receipts_are_attributed_refused_and_readable_by_their_project_only(
    tmp_path: Path, write_config: Any, start_proxy: Any, fake_upstream: Any
) -> None:
    keys = _make_keys(tmp_path / "ledger.db")
    proxy = await start_proxy(write_config())
    (web, web_id), (shop, _), (admin, _) = keys["web"], keys["shop"], keys["admin"]
    async with openai.AsyncOpenAI(base_url=proxy.base, api_key=web, max_retries=0) as client:
        _, headers = await _chat(client, extra_headers={"x-nextmodel-project": "spoofed"})
        with pytest.raises(openai.RateLimitError) as info:  # rpm 1: the second request in a minute is refused
            await _chat(client)
    ok_id, refused_id = (
        headers["x-nextmodel-receipt-id"],
        info.value.response.headers["x-nextmodel-receipt-id"],
    )
    async with openai.AsyncOpenAI(base_url=proxy.base, api_key="nm-wrong", max_retries=0) as stranger:
        with pytest.raises(openai.AuthenticationError):
            await _chat(stranger)
    assert fake_upstream.state.calls == 1 and _rows(tmp_path) == 2  # the 401 left no receipt

    status, r = await _get_as(proxy, web, f"/receipts/{ok_id}")
    assert status == 200 and (r["key_id"], r["project"], r["team"]) == (web_id, "web", "growth")
    status, refused = await _get_as(proxy, web, f"/receipts/{refused_id}")
    assert status == 200 and (refused["status"], refused["served_mode"], refused["key_id"]) == (
        429,
        "error",
        web_id,
    )
    assert refused["error_code"] == info.value.code and refused["billed_cost_usd"] == "0.00"
    assert (await _get_as(proxy, shop, f"/receipts/{ok_id}"))[0] == 404  # another project's receipt
    assert (await _get_as(proxy, admin, f"/receipts/{ok_id}"))[0] == 200
    assert (await _get_as(proxy, shop, "/receipts"))[1]["data"] == []
    assert (await _get_as(proxy, shop, "/receipts", project="web"))[0] == 403
    assert [x["id"] for x in (await _get_as(proxy, admin, "/receipts"))[1]["data"]] == [refused_id, ok_id]
    status, _ = await _get(proxy, f"/receipts/{ok_id}")
    assert status == 401  # no key at all once keys exist


async def test_price_version_is_stable_across_restarts_and_changes_with_the_price(
    tmp_path: Path, write_config: Any, start_proxy: Any
) -> None:
    async def one_call(config: Any) -> dict[str, Any]:
        proxy = await start_proxy(config)
        async with openai.AsyncOpenAI(base_url=proxy.base, api_key="x", max_retries=0) as client:
            _, headers = await _chat(client)
        receipt = await _receipt(proxy, headers["x-nextmodel-receipt-id"])
        await proxy.close()
        return receipt

    first = await one_call(write_config())
    same = await one_call(write_config())
    path = tmp_path / "providers.yaml"
    path.write_text(
        path.read_text().replace(
            "upstream_id: fake-basic, price: {input: 0.15,",
            "upstream_id: fake-basic, price: {input: 0.16,",
            1,
        )
    )
    repriced = await one_call(load_config(path))
    assert first["price_version"] == same["price_version"] != repriced["price_version"]
    assert repriced["billed_cost_usd"] == "0.00000568"  # 13 x 0.16 + 6 x 0.60 = 5.68 per 1M
    assert repriced["prev_hash"] == same["hash"] and same["prev_hash"] == first["hash"]
    verified = _cli(tmp_path, "receipts", "verify")
    assert verified.exit_code == 0 and "3 receipts checked" in verified.output
