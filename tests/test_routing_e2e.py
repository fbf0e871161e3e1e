"""Routes, filters, fallback and budget switches through the running proxy, with the openai SDK as client."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from decimal import Decimal
from typing import Any

import aiohttp
import openai
import pytest

from nextmodel_proxy.ledger.receipts import Receipt
from nextmodel_proxy.ledger.writer import Ledger
from nextmodel_proxy.timespec import format_utc

HI = [{"role": "user", "content": "hello there"}]
TOOLS = [
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
]
BUDGET_YAML = """
projects:
  thrifty: {budget: {amount: 1, period: month, switch_route: r-domestic, switch_at: 0.5}}
"""


def seeded(
    model: str, *, ttft_ms: float = 100.0, project: str | None = None, billed: Decimal | None = None
) -> Receipt:
    """A fresh, successful chat receipt as the proxy would have written it."""
    amount = billed if billed is not None else Decimal(0)
    return Receipt(
        receipt_id=f"rcpt_seed{uuid.uuid4().hex}",
        created_utc=format_utc(dt.datetime.now(dt.UTC)),
        project=project,
        endpoint="chat",
        model_requested=model,
        model=model,
        provider="fake",
        upstream_model=model,
        served_mode="fresh",
        status=200,
        prompt_tokens=10,
        completion_tokens=10,
        usage_source="upstream",
        upstream_cost_usd=amount,
        billed_cost_usd=amount,
        fresh_cost_usd=amount,
        savings_usd=Decimal(0),
        latency_ms=ttft_ms * 2,
        ttft_ms=ttft_ms,
    )


async def seed_ledger(path: str, receipts: list[Receipt]) -> None:
    ledger = Ledger(path)
    await ledger.start()
    try:
        for receipt in receipts:
            await ledger.submit(receipt)
    finally:
        await ledger.close()


@pytest.fixture
async def make_client(write_config: Any, start_proxy: Any) -> Any:
    """Start a proxy on `extra` config (after seeding its ledger), return an SDK client for it."""
    clients: list[openai.AsyncOpenAI] = []

    async def make(
        extra: str = "", *, seed: list[Receipt] = (), headers: dict[str, str] | None = None, **kw: Any
    ) -> openai.AsyncOpenAI:
        config = write_config(extra, **kw)
        if seed:
            await seed_ledger(config.ledger.path, list(seed))
        server = await start_proxy(config)
        client = openai.AsyncOpenAI(
            base_url=server.base,
            api_key="sk-client",
            max_retries=0,
            timeout=20,
            default_headers=headers or {},
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def chat(client: openai.AsyncOpenAI, model: str, **kw: Any) -> tuple[Any, dict[str, Any]]:
    """One completion through the proxy and its receipt read back from GET /v1/receipts/{id}."""
    kw.setdefault("messages", HI)
    raw = await client.chat.completions.with_raw_response.create(model=model, **kw)
    return raw.parse(), await receipt_of(client, raw.headers["x-nextmodel-receipt-id"])


async def receipt_of(client: openai.AsyncOpenAI, receipt_id: str) -> dict[str, Any]:
    """The stored receipt; a stream's is committed just after its last byte, so wait for it (bounded)."""
    deadline = time.monotonic() + 3.0
    async with aiohttp.ClientSession() as s:
        while True:
            async with s.get(f"{client.base_url}receipts/{receipt_id}") as r:
                if r.status == 200 or time.monotonic() > deadline:
                    assert r.status == 200, await r.text()
                    return await r.json()
            await asyncio.sleep(0.02)


def upstream_models(fake_upstream: Any) -> list[str]:
    return [body["model"] for body in fake_upstream.state.requests]


# --- strategies -----------------------------------------------------------------------------------


async def test_fallback_route_serves_the_first_listed_candidate(client, fake_upstream):
    completion, receipt = await chat(client, "r-fallback")
    assert completion.model == "r-out-cheap"
    assert upstream_models(fake_upstream) == ["r-out-cheap"]
    assert receipt["route"] == "r-fallback" and receipt["model"] == "r-out-cheap"
    assert receipt["attempts"][0]["route"] == "r-fallback"
    assert "in listed order; chose r-out-cheap" in receipt["attempts"][0]["decision"]


async def test_cheapest_route_picks_by_this_requests_size(client, fake_upstream):
    # A short prompt with a long answer: output price dominates, r-out-cheap ($1/1M out) wins.
    _, short = await chat(client, "r-cheapest", max_tokens=2000)
    # A long prompt with a tiny answer: input price dominates, r-in-cheap ($0.1/1M in) wins.
    long_prompt = [{"role": "user", "content": "word " * 8000}]
    _, long = await chat(client, "r-cheapest", messages=long_prompt, max_tokens=1)
    assert upstream_models(fake_upstream) == ["r-out-cheap", "r-in-cheap"]
    assert short["model"] == "r-out-cheap" and long["model"] == "r-in-cheap"
    assert "estimated cost r-out-cheap ~$" in short["attempts"][0]["decision"]


async def test_fastest_route_uses_the_catalog_estimate_without_observations(client, fake_upstream):
    _, receipt = await chat(client, "r-fastest")
    assert upstream_models(fake_upstream) == ["r-sluggish"]  # estimate 100ms beats r-quick's 900ms
    assert "r-sluggish 100ms (estimate)" in receipt["attempts"][0]["decision"]


async def test_fastest_route_prefers_latency_observed_in_the_ledger(make_client, fake_upstream):
    seed = [seeded("r-quick", ttft_ms=40), seeded("r-quick", ttft_ms=50), seeded("r-quick", ttft_ms=60)]
    client = await make_client(seed=seed)
    _, receipt = await chat(client, "r-fastest")
    assert upstream_models(fake_upstream) == ["r-quick"]
    decision = receipt["attempts"][0]["decision"]
    assert "r-quick 50ms (observed), r-sluggish 100ms (estimate); chose r-quick" in decision


async def test_weighted_route_spreads_requests_by_weight(client, fake_upstream):
    for _ in range(40):
        await client.chat.completions.create(model="r-weighted", messages=HI, max_tokens=5)
    served = upstream_models(fake_upstream)
    assert len(served) == 40 and set(served) == {"r-in-cheap", "r-out-cheap"}
    assert 20 <= served.count("r-in-cheap") <= 38  # weight 3 of 4: ~30 expected


# --- filters --------------------------------------------------------------------------------------


async def test_tools_in_the_request_skip_candidates_without_tools(client, fake_upstream):
    _, plain = await chat(client, "r-tools")
    _, tooled = await chat(client, "r-tools", tools=TOOLS)
    assert upstream_models(fake_upstream) == ["r-in-cheap", "r-toolful"]
    assert plain["model"] == "r-in-cheap" and tooled["model"] == "r-toolful"
    assert "skipped r-in-cheap (lacks tools)" in tooled["attempts"][0]["decision"]


async def test_tag_filter_keeps_only_domestic_models(client, fake_upstream):
    _, receipt = await chat(client, "r-domestic")
    assert upstream_models(fake_upstream) == ["r-out-cheap"]
    assert "r-in-cheap (tags global not in domestic)" in receipt["attempts"][0]["decision"]


async def test_max_price_filter_drops_the_dear_model(client, fake_upstream):
    _, receipt = await chat(client, "r-capped")
    assert upstream_models(fake_upstream) == ["r-out-cheap"]
    assert "output $10/1M over max $5" in receipt["attempts"][0]["decision"]


async def test_filters_leaving_no_candidate_are_a_clear_400(client, fake_upstream):
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="r-domestic", messages=HI, tools=TOOLS)
    assert "no candidate can serve this request needing tools" in str(info.value)
    assert fake_upstream.state.calls == 0


# --- fallback and retries -------------------------------------------------------------------------


async def test_route_falls_back_after_a_500(client, fake_upstream):
    completion, receipt = await chat(client, "r-500-first")
    assert completion.choices[0].message.content == "Echo: hello there"
    assert upstream_models(fake_upstream) == ["fake-error-500", "r-in-cheap"]
    assert [(a["model"], a["outcome"]) for a in receipt["attempts"][1:]] == [
        ("fake-error-500", "500"),
        ("r-in-cheap", "200"),
    ]
    assert receipt["model"] == "r-in-cheap" and receipt["status"] == 200


async def test_429_is_retried_after_retry_after_then_falls_back(client, fake_upstream):
    start = time.perf_counter()
    _, receipt = await chat(client, "r-429-first")
    waited = time.perf_counter() - start
    # always-429 answers Retry-After: 1 each time; the provider allows 2 retries, then r-in-cheap serves.
    assert upstream_models(fake_upstream) == ["fake-error-429"] * 3 + ["r-in-cheap"]
    assert waited >= 2.0
    assert [a["outcome"] for a in receipt["attempts"][1:]] == ["429", "429", "429", "200"]


async def test_upstream_timeout_before_the_first_byte_falls_back(make_client, fake_upstream):
    fake_upstream.state.hang_s = 2.0
    client = await make_client(timeout_s=0.3)
    _, receipt = await chat(client, "r-hang-first")
    assert upstream_models(fake_upstream) == ["fake-hang", "r-in-cheap"]
    assert [(a["model"], a["outcome"]) for a in receipt["attempts"][1:]] == [
        ("fake-hang", "upstream_timeout"),
        ("r-in-cheap", "200"),
    ]


async def test_receipt_records_each_attempt_and_the_route_decision(client, fake_upstream):
    _, receipt = await chat(client, "resilient")
    decision, *attempts = receipt["attempts"]
    assert decision["route"] == "resilient" and "chose dead-model" in decision["decision"]
    assert [(a["provider"], a["outcome"]) for a in attempts] == [
        ("dead", "upstream_unreachable"),
        ("retrying", "500"),
        ("retrying", "500"),
        ("retrying", "500"),
        ("fake", "200"),
    ]
    assert receipt["provider"] == "fake" and receipt["route"] == "resilient"


async def test_route_does_not_fall_back_after_the_first_streamed_byte(client, fake_upstream):
    raw = await client.chat.completions.with_raw_response.create(
        model="r-broken-first", stream=True, messages=[{"role": "user", "content": "cut me off"}]
    )
    received = []
    try:
        async for chunk in raw.parse():
            received.append(chunk)
    except (openai.APIError, aiohttp.ClientError):
        pass
    assert received
    assert upstream_models(fake_upstream) == ["fake-broken"]
    receipt = await receipt_of(client, raw.headers["x-nextmodel-receipt-id"])
    assert [a["model"] for a in receipt["attempts"][1:]] == ["retry-broken"]
    assert receipt["error_code"] is not None


# --- budget switch, retirement, catalog -----------------------------------------------------------


async def test_project_past_its_switch_share_is_served_by_the_switch_route(make_client, fake_upstream):
    spent = [seeded("r-out-cheap", project="thrifty", billed=Decimal("0.3")) for _ in range(2)]
    client = await make_client(BUDGET_YAML, seed=spent, headers={"x-nextmodel-project": "thrifty"})
    _, receipt = await chat(client, "r-fallback")
    assert receipt["route"] == "r-domestic" and receipt["project"] == "thrifty"
    assert "budget 0.6 spent, switched r-fallback -> r-domestic" in receipt["attempts"][0]["decision"]
    assert upstream_models(fake_upstream) == ["r-out-cheap"]


async def test_project_under_its_switch_share_keeps_the_requested_route(make_client, fake_upstream):
    spent = [seeded("r-out-cheap", project="thrifty", billed=Decimal("0.2"))]
    client = await make_client(BUDGET_YAML, seed=spent, headers={"x-nextmodel-project": "thrifty"})
    # max_tokens: without it the budget holds the model's whole maximum output (issue 10), past this budget
    _, receipt = await chat(client, "r-fallback", max_tokens=1000)
    assert receipt["route"] == "r-fallback" and "switched" not in receipt["attempts"][0]["decision"]


async def test_retired_model_is_410_naming_the_date(client, fake_upstream):
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="r-old", messages=HI)
    assert info.value.status_code == 410
    assert info.value.body["code"] == "model_retired"
    assert "2024-01-01" in info.value.message and "r-in-cheap" in info.value.message
    assert fake_upstream.state.calls == 0


async def test_route_skips_a_retired_candidate(client, fake_upstream):
    _, receipt = await chat(client, "r-retiring")
    assert upstream_models(fake_upstream) == ["r-in-cheap"]
    assert "skipped r-old (retired 2024-01-01)" in receipt["attempts"][0]["decision"]


async def test_models_endpoint_lists_prices_and_routes(client):
    async with aiohttp.ClientSession() as s, s.get(f"{client.base_url}models") as r:
        data = {m["id"]: m for m in (await r.json())["data"]}
    assert data["r-in-cheap"]["pricing"]["input"] == "0.1" and data["r-in-cheap"]["pricing"]["output"] == "10"
    assert data["r-old"]["retires"] == "2024-01-01"
    assert data["r-weighted"]["route"]["strategy"] == "weighted"
    assert data["r-weighted"]["route"]["candidates"] == [
        {"model": "r-in-cheap", "weight": 3},
        {"model": "r-out-cheap", "weight": 1},
    ]
    assert data["r-capped"]["route"]["max_price"] == {"output": "5"}
    listed = await client.models.list()
    assert {"r-fallback", "gpt-test"} <= {m.id for m in listed.data}


async def test_streamed_request_falls_back_before_the_first_byte(client, fake_upstream):
    raw = await client.chat.completions.with_raw_response.create(
        model="r-500-first", stream=True, stream_options={"include_usage": True}, messages=HI
    )
    text = "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices])
    assert text == "Echo: hello there"
    assert upstream_models(fake_upstream) == ["fake-error-500", "r-in-cheap"]
    receipt = await receipt_of(client, raw.headers["x-nextmodel-receipt-id"])
    assert receipt["model"] == "r-in-cheap" and receipt["stream"] is True and receipt["status"] == 200
    assert [a["outcome"] for a in receipt["attempts"][1:]] == ["500", "200"]


async def test_last_candidates_429_reaches_the_client_with_its_retry_after(make_client, fake_upstream):
    client = await make_client()
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="fake-error-429", messages=HI)
    assert info.value.response.headers["retry-after"] == "1"
    assert fake_upstream.state.calls == 1  # the fake provider allows no retries
