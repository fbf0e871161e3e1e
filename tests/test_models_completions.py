"""GET /v1/models/{id}, POST /v1/completions (with suffix), and the 404 for unknown paths."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from endpoint_helpers import receipt, spend_total, sse_events, usd, with_endpoint_models
from fake_openai_extra import REQUESTS


@pytest.fixture
async def cproxy(write_config: Any, start_proxy: Any) -> Any:
    return await start_proxy(with_endpoint_models(write_config()))


@pytest.fixture
async def cclient(cproxy: Any) -> Any:
    async with openai.AsyncOpenAI(base_url=cproxy.base, api_key="sk-client", max_retries=0, timeout=20) as c:
        yield c


async def test_models_retrieve_has_openai_shape_and_pricing(cclient: Any) -> None:
    model = await cclient.models.retrieve("fake-basic")
    assert (model.id, model.object, model.owned_by) == ("fake-basic", "model", "fake")
    extra = model.model_extra or {}
    assert extra["pricing"]["input"] is not None and extra["upstream_id"] == "fake-basic"
    assert extra["endpoints"] == ["chat", "completions", "embeddings"]  # an OpenAI-compatible API's default
    native = await cclient.models.retrieve("resp-native")
    assert (native.model_extra or {})["endpoints"] == ["chat", "responses"]  # as configured
    claude = await cclient.models.retrieve("claude-sonnet-4-5")
    assert (claude.model_extra or {})["endpoints"] == ["messages"]
    slashed = await cclient.models.retrieve("acme/fim-model")  # ids with a slash, as OpenRouter-style names
    assert slashed.id == "acme/fim-model"
    route = await cclient.models.retrieve("resilient")
    assert (route.model_extra or {})["route"]["strategy"] == "fallback"
    with pytest.raises(openai.NotFoundError) as info:
        await cclient.models.retrieve("no-such-model")
    assert info.value.code == "model_not_found"


async def test_completions_pass_through_with_suffix_and_are_priced(
    cclient: Any, cproxy: Any, fake_upstream: Any
) -> None:
    raw = await cclient.completions.with_raw_response.create(
        model="fim-model", prompt="def add(a, b):\n    ", suffix="\n    return total", max_tokens=16
    )
    completion = raw.parse()
    assert "before \n    return total" in completion.choices[0].text
    _, _, sent = fake_upstream.app[REQUESTS][-1]
    assert sent["suffix"] == "\n    return total" and sent["model"] == "fim-model"
    rec = await receipt(cproxy, raw.headers["x-nextmodel-receipt-id"])
    usage = completion.usage
    assert rec["endpoint"] == "completions"
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert Decimal(rec["billed_cost_usd"]) == usd(
        [(usage.prompt_tokens, "1"), (usage.completion_tokens, "2")]
    )


async def test_completions_stream_asks_for_usage_but_gives_it_only_when_asked(
    cproxy: Any, fake_upstream: Any, tmp_path: Any
) -> None:
    body = {"model": "fim-model", "prompt": "x = ", "suffix": ";", "stream": True}
    async with aiohttp.ClientSession() as s, s.post(cproxy.base + "/completions", json=body) as r:
        events = sse_events(await r.read())
        receipt_id = r.headers["x-nextmodel-receipt-id"]
    _, _, sent = fake_upstream.app[REQUESTS][-1]
    assert sent["stream_options"] == {"include_usage": True}  # the receipt needs real figures
    assert all(e[1]["choices"] for e in events)  # the usage-only chunk was not asked for: not relayed
    text = "".join(e[1]["choices"][0]["text"] for e in events)
    assert text.endswith("/* before ; */")
    rec = await receipt(cproxy, receipt_id)
    assert rec["usage_source"] == "upstream" and rec["completion_tokens"] == 1 + len(text) // 4
    assert Decimal(spend_total(tmp_path)["billed_cost_usd"]) == Decimal(rec["billed_cost_usd"]) > 0


async def test_completions_to_an_upstream_without_them_is_a_clear_400(
    cproxy: Any, fake_upstream: Any
) -> None:
    before = len(fake_upstream.app[REQUESTS])
    for model in (
        "claude-sonnet-4-5",
        "resp-native",
    ):  # kind anthropic; an endpoints: list without completions
        async with (
            aiohttp.ClientSession() as s,
            s.post(cproxy.base + "/completions", json={"model": model, "prompt": "x"}) as r,
        ):
            err = (await r.json())["error"]
        assert r.status == 400 and err["code"] == "unsupported_parameter" and "completions" in err["message"]
    async with (
        aiohttp.ClientSession() as s,
        s.post(cproxy.base + "/completions", json={"model": "fim-model"}) as r,
    ):
        assert r.status == 400 and (await r.json())["error"]["param"] == "prompt"
    assert len(fake_upstream.app[REQUESTS]) == before


async def test_unknown_path_lists_what_the_proxy_serves(cproxy: Any) -> None:
    async with aiohttp.ClientSession() as s, s.post(cproxy.base + "/assistants", json={}) as r:
        body = orjson.loads(await r.read())
    assert r.status == 404 and body["error"]["code"] == "not_found"
    for path in (
        "POST /v1/chat/completions",
        "POST /v1/responses",
        "POST /v1/messages",
        "GET /v1/models/{id}",
    ):
        assert path in body["error"]["message"]
