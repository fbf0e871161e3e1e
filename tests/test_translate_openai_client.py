"""The official openai SDK, as a client, sees the same shapes from the Anthropic and Gemini adapters."""

from __future__ import annotations

import json

import aiohttp
import openai
import pytest
from aiohttp import web
from fake_anthropic import add_routes as add_anthropic
from fake_gemini import add_routes as add_gemini
from translate_helpers import make_target

from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.upstream.registry import adapter_for

KEY_ENV = "NM_TEST_PROVIDER_KEY"
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def _chat(request: web.Request) -> web.StreamResponse:
    """A minimal stand-in for the proxy's chat handler: kind from the model name, adapter does the rest."""
    body = await request.json()
    kind = "anthropic" if body["model"].startswith("claude") else "gemini"
    target = make_target(kind, str(request.url.origin()), body["model"], key_env=KEY_ENV)
    try:
        call = await adapter_for(kind).open(
            request.app[SESSION], target, body, endpoint="chat", client_headers=request.headers
        )
    except ProxyError as exc:
        return web.Response(status=exc.status, body=exc.body(), content_type="application/json")
    try:
        if not call.is_stream:
            return web.Response(status=call.status, body=await call.read(), content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        async for event in call.events():
            await resp.write(event)
        await resp.write_eof()
        return resp
    finally:
        call.release()


async def _session_ctx(app: web.Application):
    async with aiohttp.ClientSession() as session:
        app[SESSION] = session
        yield


@pytest.fixture
async def client(aiohttp_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "provider-secret")
    app = web.Application()
    add_anthropic(app)
    add_gemini(app)
    app.router.add_post("/v1/chat/completions", _chat)
    app.cleanup_ctx.append(_session_ctx)
    server = await aiohttp_server(app)
    sdk = openai.AsyncOpenAI(
        base_url=str(server.make_url("/v1")), api_key="nm-key", max_retries=0, timeout=10
    )
    yield sdk
    await sdk.close()


MESSAGES = [{"role": "user", "content": "Weather in two places?"}]
# Tool names in the recorded answers: (non-stream, stream).
TOOLS = {
    "claude-sonnet-4-5-tools": (["get_weather", "get_time"], ["get_weather", "get_time"]),
    "gemini-2.5-flash-tools": (
        ["get_current_temperature"] * 2,
        ["get_current_temperature", "get_local_time"],
    ),
}


@pytest.mark.parametrize("model", list(TOOLS))
async def test_sdk_non_stream_sees_openai_tool_calls(client, model):
    out = await client.chat.completions.create(model=model, messages=MESSAGES)
    assert out.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in out.choices[0].message.tool_calls] == TOOLS[model][0]
    assert out.usage.prompt_tokens >= out.usage.prompt_tokens_details.cached_tokens


@pytest.mark.parametrize("model", list(TOOLS))
async def test_sdk_stream_helper_accumulates_tool_calls_and_usage(client, model):
    async with client.chat.completions.stream(model=model, messages=MESSAGES) as stream:
        final = await stream.get_final_completion()
    assert [c.function.name for c in final.choices[0].message.tool_calls] == TOOLS[model][1]
    assert all(c.function.arguments.startswith("{") for c in final.choices[0].message.tool_calls)
    assert final.usage is not None and final.usage.completion_tokens > 0


@pytest.mark.parametrize("model", ["claude-sonnet-4-5-midstream-error", "gemini-2.5-flash-midstream-error"])
async def test_sdk_raises_on_a_midstream_error_event(client, model):
    stream = await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    seen = []
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            seen.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(seen)  # text before the error still reached the client


@pytest.mark.parametrize("model", ["claude-sonnet-4-5-error", "gemini-2.5-flash-error"])
async def test_sdk_sees_upstream_400_as_bad_request(client, model):
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model=model, messages=MESSAGES)


async def test_sdk_sees_an_unsupported_parameter_as_bad_request_naming_it(client):
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="claude-sonnet-4-5", messages=MESSAGES, n=2)
    assert info.value.param == "n" and info.value.code == "unsupported_parameter"


async def _tool_loop(client, model: str) -> tuple[list, dict]:
    """Turn 1 asks for tools; turn 2 sends the SDK's own assistant message and results to the echo model."""
    first = await client.chat.completions.create(model=model + "-tools", messages=MESSAGES)
    calls = first.choices[0].message.tool_calls
    assistant = first.choices[0].message.model_dump(exclude_none=True)
    results = [{"role": "tool", "tool_call_id": c.id, "content": '{"ok": true}'} for c in calls]
    echo = await client.chat.completions.create(
        model=model + "-echo", messages=[*MESSAGES, assistant, *results]
    )
    return calls, json.loads(echo.choices[0].message.content)


async def test_sdk_gemini_tool_loop_sends_the_thought_signature_back(client):
    calls, sent = await _tool_loop(client, "gemini-2.5-flash")
    model_turn, results_turn = sent["contents"][1], sent["contents"][2]
    assert model_turn["parts"][0]["thoughtSignature"] == "CtwFAVSoXO5Bzl3GKiBqexdUdCg7y3gHtQmd0Kfq1Yj6V8WP"
    assert [p["functionResponse"]["response"] for p in results_turn["parts"]] == [{"ok": True}] * len(calls)


async def test_sdk_claude_tool_loop_pairs_tool_results_with_tool_use_ids(client):
    calls, sent = await _tool_loop(client, "claude-sonnet-4-5")
    uses = [b["id"] for b in sent["messages"][1]["content"] if b["type"] == "tool_use"]
    results = [b["tool_use_id"] for b in sent["messages"][2]["content"]]
    assert uses == results == [c.id for c in calls]
