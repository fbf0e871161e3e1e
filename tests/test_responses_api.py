"""POST /v1/responses: passthrough to OpenAI-kind upstreams that serve it, translation to chat elsewhere."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from endpoint_helpers import receipt, spend_total, sse_events, usd, with_endpoint_models
from fake_openai_extra import REQUESTS

PROMPT = "hello there world"
TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


@pytest.fixture
async def rproxy(write_config: Any, start_proxy: Any) -> Any:
    return await start_proxy(with_endpoint_models(write_config()))


@pytest.fixture
async def rclient(rproxy: Any) -> Any:
    async with openai.AsyncOpenAI(base_url=rproxy.base, api_key="sk-client", max_retries=0, timeout=20) as c:
        yield c


async def _post(proxy: Any, body: dict[str, Any], path: str = "/responses") -> tuple[int, Any, bytes]:
    async with aiohttp.ClientSession() as s, s.post(proxy.base + path, json=body) as r:
        return r.status, r.headers, await r.read()


async def _direct(fake: Any, body: dict[str, Any]) -> bytes:
    async with aiohttp.ClientSession() as s, s.post(fake.url + "/v1/responses", json=body) as r:
        return await r.read()


def _native_usage_cost() -> tuple[dict[str, int], Decimal]:
    # The fake bills 9 + len(JSON of input) // 4 input tokens, 8 of them cached, and 1 + len(text) // 4 + 5
    # output tokens (5 of them reasoning) for "resp-cached-reason".
    prompt = 9 + len(orjson.dumps(PROMPT)) // 4
    output = 1 + len("Echo: " + PROMPT) // 4 + 5
    cost = usd([(prompt - 8, "2"), (8, "0.5"), (output, "8")])
    return {"prompt": prompt, "output": output}, cost


# --- passthrough --------------------------------------------------------------------------------------


async def test_native_non_stream_is_byte_faithful_and_priced_from_responses_usage(
    rclient: Any, rproxy: Any, fake_upstream: Any
) -> None:
    raw = await rclient.responses.with_raw_response.create(model="resp-native", input=PROMPT)
    response = raw.parse()
    assert response.output_text == "Echo: " + PROMPT
    expected = await _direct(fake_upstream, {"model": "resp-cached-reason", "input": PROMPT})
    assert raw.http_response.content == expected  # byte for byte what the upstream sent
    assert "x-nextmodel-translated" not in raw.headers
    tokens, cost = _native_usage_cost()
    rec = await receipt(rproxy, raw.headers["x-nextmodel-receipt-id"])
    assert rec["endpoint"] == "responses"
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (tokens["prompt"], tokens["output"])
    assert (rec["cached_tokens"], rec["reasoning_tokens"]) == (8, 5)
    assert Decimal(rec["billed_cost_usd"]) == cost
    assert rec["usage_source"] == "upstream"


async def test_native_stream_is_byte_faithful_and_settles_on_completed(
    rproxy: Any, fake_upstream: Any
) -> None:
    status, headers, body = await _post(rproxy, {"model": "resp-native", "input": PROMPT, "stream": True})
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    expected = await _direct(fake_upstream, {"model": "resp-cached-reason", "input": PROMPT, "stream": True})
    assert body == expected
    _, cost = _native_usage_cost()
    rec = await receipt(rproxy, headers["x-nextmodel-receipt-id"])
    assert rec["stream"] is True and rec["status"] == 200 and rec["error_code"] is None
    assert Decimal(rec["billed_cost_usd"]) == cost
    assert rec["upstream_request_id"] == "req_fake_responses"


@pytest.mark.parametrize(
    ("model", "terminal", "error_code"),
    [
        ("resp-incomplete", "response.incomplete", None),
        ("resp-failed", "response.failed", "server_error"),
    ],
)
async def test_stream_settles_on_whichever_terminal_event_carries_usage(
    rproxy: Any, model: str, terminal: str, error_code: str | None
) -> None:
    status, headers, body = await _post(rproxy, {"model": model, "input": PROMPT, "stream": True})
    events = sse_events(body)
    assert status == 200 and events[-1][0] == terminal
    usage = events[-1][1]["response"]["usage"]
    rec = await receipt(rproxy, headers["x-nextmodel-receipt-id"])
    assert rec["error_code"] == error_code
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (usage["input_tokens"], usage["output_tokens"])
    expected = usd([(usage["input_tokens"], "2"), (usage["output_tokens"], "8")])
    assert Decimal(rec["billed_cost_usd"]) == expected > 0  # never $0 because the stream did not complete


async def test_native_midstream_error_passes_through_and_is_recorded(rproxy: Any) -> None:
    status, headers, body = await _post(
        rproxy, {"model": "resp-midstream-error", "input": PROMPT, "stream": True}
    )
    events = sse_events(body)
    assert status == 200 and events[-1][0] == "error" and events[-1][1]["code"] == "server_error"
    rec = await receipt(rproxy, headers["x-nextmodel-receipt-id"])
    assert rec["error_code"] == "server_error" and rec["served_mode"] == "error"


async def test_native_cache_replays_only_to_a_responses_request_of_the_same_kind(
    rproxy: Any, fake_upstream: Any
) -> None:
    body = {"model": "resp-native", "input": PROMPT, "temperature": 0}
    first = await _post(rproxy, body)
    second = await _post(rproxy, body)
    assert first[1]["x-nextmodel-cache"] == "miss" and second[1]["x-nextmodel-cache"] == "hit"
    assert second[2] == first[2]  # the stored bytes
    calls = len(fake_upstream.app[REQUESTS])
    # The same conversation as chat, and the same request streamed, are other entries.
    chat = await _post(
        rproxy,
        {"model": "resp-native", "messages": [{"role": "user", "content": PROMPT}], "temperature": 0},
        "/chat/completions",
    )
    assert chat[0] == 200 and chat[1]["x-nextmodel-cache"] == "miss"
    streamed = await _post(rproxy, {**body, "stream": True})
    await receipt(rproxy, streamed[1]["x-nextmodel-receipt-id"])  # written after its cache entry (one writer)
    assert streamed[1]["x-nextmodel-cache"] == "miss"
    assert len(fake_upstream.app[REQUESTS]) == calls + 1  # the stream went upstream (chat is another path)
    again = await _post(rproxy, {**body, "stream": True})
    assert again[1]["x-nextmodel-cache"] == "hit" and again[2] == streamed[2]
    hit = await receipt(rproxy, second[1]["x-nextmodel-receipt-id"])
    assert (
        hit["served_mode"] == "exact-cache" and hit["reused_receipt_id"] == first[1]["x-nextmodel-receipt-id"]
    )


async def test_upstream_error_passes_through_in_openai_shape(rclient: Any) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await rclient.responses.create(model="resp-error-400", input=PROMPT)
    assert info.value.code == "invalid_value"


# --- translation ---------------------------------------------------------------------------------------


def _function_calls(response: Any) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (o.call_id, o.name, orjson.loads(o.arguments)) for o in response.output if o.type == "function_call"
    ]


async def test_translated_stream_with_function_calls_through_the_sdk(rclient: Any, rproxy: Any) -> None:
    async with rclient.responses.stream(model="fake-tools", input="weather?", tools=TOOLS) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    for needed in (
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ):
        assert needed in kinds
    assert _function_calls(final) == [
        ("call_abc123", "get_weather", {"city": "Hà Nội", "unit": "celsius"}),
        ("call_def456", "get_time", {"tz": "Asia/Kolkata", "fmt": "24h°"}),
    ]
    assert final.usage is not None and final.usage.input_tokens > 0


async def test_translated_text_stream_has_the_full_content_lifecycle(rproxy: Any, fake_upstream: Any) -> None:
    status, headers, body = await _post(
        rproxy, {"model": "fake-basic", "input": PROMPT, "stream": True, "instructions": "Be brief."}
    )
    assert status == 200 and headers["x-nextmodel-translated"] == "openai-chat"
    events = sse_events(body)
    kinds = [name for name, _ in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [obj["sequence_number"] for _, obj in events] == list(range(len(events)))
    text = "".join(obj["delta"] for name, obj in events if name == "response.output_text.delta")
    assert text == "Echo: " + PROMPT == events[-1][1]["response"]["output"][0]["content"][0]["text"]
    sent = fake_upstream.state.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["stream_options"] == {"include_usage": True}
    usage = events[-1][1]["response"]["usage"]
    rec = await receipt(rproxy, headers["x-nextmodel-receipt-id"])
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (usage["input_tokens"], usage["output_tokens"])
    assert Decimal(rec["billed_cost_usd"]) == usd(
        [(usage["input_tokens"], "0.15"), (usage["output_tokens"], "0.60")]
    )


async def test_translated_non_stream_function_call_round_trip(rclient: Any, fake_upstream: Any) -> None:
    raw = await rclient.responses.with_raw_response.create(model="fake-tools", input="weather?", tools=TOOLS)
    first = raw.parse()
    assert raw.headers["x-nextmodel-translated"] == "openai-chat"
    calls = _function_calls(first)
    assert calls[0] == ("call_abc123", "get_weather", {"city": "Hà Nội", "unit": "celsius"})
    follow = [
        {"role": "user", "content": "weather?"},
        *[o.model_dump(exclude_none=True) for o in first.output],
        {"type": "function_call_output", "call_id": "call_abc123", "output": "21C"},
        {"type": "function_call_output", "call_id": "call_def456", "output": "10:00"},
    ]
    second = await rclient.responses.create(model="fake-basic", input=follow, tools=TOOLS)
    assert second.output_text.startswith("Echo: weather?")
    sent = fake_upstream.state.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]
    assert sent[1]["tool_calls"][1]["function"]["name"] == "get_time"
    assert sent[2] == {"role": "tool", "tool_call_id": "call_abc123", "content": "21C"}
    assert fake_upstream.state.requests[-1]["tools"][0]["function"]["name"] == "get_weather"


async def test_translated_to_anthropic_stream_prices_cache_reads_and_writes(
    rclient: Any, rproxy: Any
) -> None:
    async with rclient.responses.stream(model="claude-sonnet-4-5-tools", input="weather?", tools=TOOLS) as s:
        final = await s.get_final_response()
    names = [name for _, name, _ in _function_calls(final)]
    assert names == ["get_weather", "get_time"] and final.output_text.startswith("Okay")
    # stream_tools.sse: 472 fresh input, 2048 cache reads, 1024 cache writes; output from message_delta.
    assert final.usage.input_tokens == 472 + 2048 + 1024
    assert final.usage.input_tokens_details.cached_tokens == 2048
    rid = final.id
    assert rid.startswith("resp_")


async def test_stateful_fields_on_a_translated_upstream_are_a_clear_400(
    rproxy: Any, fake_upstream: Any
) -> None:
    before = fake_upstream.state.calls
    for extra, param in (
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"store": True}, "store"),
    ):
        status, _, body = await _post(rproxy, {"model": "fake-basic", "input": PROMPT, **extra})
        err = orjson.loads(body)["error"]
        assert status == 400 and err["param"] == param and err["code"] == "unsupported_parameter"
        assert "not supported" in err["message"]
    assert fake_upstream.state.calls == before  # nothing went upstream
    ok, _, _ = await _post(rproxy, {"model": "fake-basic", "input": PROMPT, "store": False})
    assert ok == 200


async def test_malformed_body_is_refused_in_openai_shape_without_upstream_call(
    rproxy: Any, fake_upstream: Any
) -> None:
    before = fake_upstream.state.calls, len(fake_upstream.app[REQUESTS])
    for body, param in (
        ({"model": "resp-native"}, "input"),
        ({"model": "resp-native", "input": 3}, "input"),
        ({"model": "resp-native", "input": "x", "stream": "yes"}, "stream"),
    ):
        status, headers, raw = await _post(rproxy, body)
        assert status == 400 and orjson.loads(raw)["error"]["param"] == param
        assert "x-nextmodel-receipt-id" not in headers
    assert (fake_upstream.state.calls, len(fake_upstream.app[REQUESTS])) == before


async def test_receipts_of_the_new_endpoint_reconcile_with_spend(
    rclient: Any, rproxy: Any, tmp_path: Any
) -> None:
    ids = []
    raw = await rclient.responses.with_raw_response.create(model="resp-native", input=PROMPT)
    ids.append(raw.headers["x-nextmodel-receipt-id"])
    raw = await rclient.responses.with_raw_response.create(model="fake-tools", input="w", tools=TOOLS)
    ids.append(raw.headers["x-nextmodel-receipt-id"])
    _, headers, _ = await _post(rproxy, {"model": "claude-sonnet-4-5", "input": PROMPT, "stream": True})
    ids.append(headers["x-nextmodel-receipt-id"])
    total = sum([Decimal((await receipt(rproxy, i))["billed_cost_usd"]) for i in ids], Decimal(0))
    report = spend_total(tmp_path)
    assert report["count"] == 3 and Decimal(report["billed_cost_usd"]) == total > 0


async def test_translated_stream_cut_upstream_ends_with_the_responses_error_event(rproxy: Any) -> None:
    status, headers, body = await _post(rproxy, {"model": "fake-broken", "input": PROMPT, "stream": True})
    events = sse_events(body)
    assert status == 200 and events[0][0] == "response.created"
    assert events[-1][0] == "error" and events[-1][1]["type"] == "error"
    assert "response.completed" not in [n for n, _ in events]
    assert [obj["sequence_number"] for _, obj in events] == list(range(len(events)))  # the error's comes next
    rec = await receipt(rproxy, headers["x-nextmodel-receipt-id"])  # the connection broke: 502
    assert rec["status"] == 502 and rec["error_code"] == events[-1][1]["code"] == "upstream_unreachable"
