"""The core proxy, driven by the official openai SDK against a real fake upstream."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest


async def test_non_stream_completion_passes_through_unchanged(client, fake_upstream):
    resp = await client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": "hello proxy world"}]
    )
    completion = resp.parse()
    assert completion.choices[0].message.content == "Echo: hello proxy world"
    assert completion.usage.prompt_tokens > 0
    assert resp.headers["x-nextmodel-served-mode"] == "fresh"
    assert resp.headers["x-nextmodel-provider"] == "fake"
    assert resp.headers["x-nextmodel-receipt-id"].startswith("rcpt_")
    assert resp.headers["x-nextmodel-receipt-url"].endswith(
        "/v1/receipts/" + resp.headers["x-nextmodel-receipt-id"]
    )
    # the public model id was rewritten to the upstream id
    assert fake_upstream.state.requests[-1]["model"] == "fake-basic"


async def test_client_authorization_is_replaced_by_provider_key(client, fake_upstream):
    await client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    sent = {k.lower(): v for k, v in fake_upstream.state.headers[-1].items()}
    assert sent["authorization"] == "Bearer sk-upstream-secret"
    assert "sk-client-not-forwarded" not in json.dumps(sent)


async def test_unknown_request_fields_pass_through_untouched(client, fake_upstream):
    await client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"vendor_knob": {"nested": [1, 2.5, "x"]}, "reasoning_effort": "low"},
    )
    sent = fake_upstream.state.requests[-1]
    assert sent["vendor_knob"] == {"nested": [1, 2.5, "x"]}
    assert sent["reasoning_effort"] == "low"


async def test_stream_delivers_every_event_and_hides_injected_usage(client, fake_upstream):
    stream = await client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "one two three four"}], stream=True
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: one two three four"
    assert chunks[-1].choices[0].finish_reason == "stop"
    # the proxy asked upstream for usage, but the client did not, so no usage chunk reached it
    assert fake_upstream.state.requests[-1]["stream_options"] == {"include_usage": True}
    assert all(c.usage is None for c in chunks)


async def test_stream_usage_chunk_kept_when_client_asked(client):
    stream = await client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "count me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens > 0


async def test_streamed_tool_calls_keep_every_argument_byte(client):
    stream = await client.chat.completions.create(
        model="fake-tools",
        messages=[{"role": "user", "content": "weather and time"}],
        stream=True,
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    )
    calls: dict[int, dict[str, str]] = {}
    async for chunk in stream:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = calls.setdefault(delta.index, {"name": "", "arguments": ""})
            entry["name"] += delta.function.name or ""
            entry["arguments"] += delta.function.arguments or ""
    assert calls[0] == {"name": "get_weather", "arguments": '{"city": "Hà Nội", "unit": "celsius"}'}
    assert calls[1]["name"] == "get_time"
    assert json.loads(calls[1]["arguments"]) == {"tz": "Asia/Kolkata", "fmt": "24h°"}


async def test_non_stream_tools_and_json_response_format(client):
    tools = await client.chat.completions.create(
        model="fake-tools",
        messages=[{"role": "user", "content": "x"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    )
    assert [c.function.name for c in tools.choices[0].message.tool_calls] == ["get_weather", "get_time"]
    assert tools.choices[0].finish_reason == "tool_calls"
    js = await client.chat.completions.create(
        model="fake-json",
        messages=[{"role": "user", "content": "give json"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(js.choices[0].message.content) == {"answer": "give json", "ok": True}


async def test_upstream_error_passes_through_with_its_status_and_body(client):
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(
            model="fake-error-429", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 429
    assert info.value.body["code"] == "rate_limit_exceeded"
    assert info.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.BadRequestError) as bad:
        await client.chat.completions.create(
            model="fake-error-400", messages=[{"role": "user", "content": "x"}]
        )
    assert bad.value.body["message"] == "Invalid value for 'temperature'."


async def test_unknown_model_is_404_model_not_found(client):
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.body["code"] == "model_not_found"
    assert info.value.body["param"] == "model"


async def test_missing_provider_key_is_503_naming_the_variable(client):
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="needs-key", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503
    assert info.value.body["code"] == "provider_key_missing"
    assert "NMPROXY_TEST_UNSET_KEY" in info.value.body["message"]


async def test_unreachable_upstream_is_502(client):
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="dead-model", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502
    assert info.value.body["code"] == "upstream_unreachable"


async def test_upstream_timeout_is_504(write_config, start_proxy, fake_upstream):
    fake_upstream.state.hang_s = 3
    proxy = await start_proxy(write_config(timeout_s=0.5))
    async with aiohttp.ClientSession() as s:
        async with s.post(
            proxy.base + "/chat/completions",
            json={"model": "fake-hang", "messages": [{"role": "user", "content": "x"}]},
        ) as r:
            body = await r.json()
    assert r.status == 504
    assert body["error"]["code"] == "upstream_timeout"


async def test_embeddings_pass_through(client, fake_upstream):
    result = await client.embeddings.create(model="fake-embed", input=["a", "bb"])
    assert [d.index for d in result.data] == [0, 1]
    assert result.usage.prompt_tokens == 2
    assert fake_upstream.state.requests[-1]["model"] == "fake-embed"


async def test_models_list_has_openai_shape(client):
    models = await client.models.list()
    ids = {m.id for m in models.data}
    assert {"gpt-test", "demo-chat"} <= ids


async def test_demo_provider_answers_offline_in_both_modes(client):
    plain = await client.chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": "ping"}]
    )
    assert "ping" in plain.choices[0].message.content
    assert plain.usage.total_tokens == plain.usage.prompt_tokens + plain.usage.completion_tokens
    stream = await client.chat.completions.create(
        model="demo-chat", stream=True, messages=[{"role": "user", "content": "ping"}]
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == plain.choices[0].message.content


async def test_client_disconnect_cancels_the_upstream_stream(proxy, fake_upstream):
    fake_upstream.state.silent_s = 3
    async with aiohttp.ClientSession() as s:
        resp = await s.post(
            proxy.base + "/chat/completions",
            json={"model": "fake-silent", "stream": True, "messages": [{"role": "user", "content": "x"}]},
        )
        await resp.content.readuntil(b"\n\n")
        resp.close()
    for _ in range(40):
        if fake_upstream.state.cancelled:
            break
        await asyncio.sleep(0.05)
    assert fake_upstream.state.cancelled == 1


async def test_stream_headers_reach_the_client_before_the_first_event(
    write_config, start_proxy, fake_upstream
):
    # The proxy sends a stream's headers with its first event when that is already there (one packet), and
    # on the next loop iteration when it is not: a client never waits for the first token to see the 200.
    gate = asyncio.Event()
    fake_upstream.state.first_event_gate = gate
    proxy = await start_proxy(write_config())
    body = {"model": "fake-basic", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    async with aiohttp.ClientSession() as s:
        # The upstream holds its first event until the gate opens (10 s at most; keep-alives come after 15 s),
        # so this only returns early if the headers left without an event.
        r = await asyncio.wait_for(s.post(proxy.base + "/chat/completions", json=body), 5)
        async with r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
            gate.set()
            raw = await r.read()
    assert raw.startswith(b"data: ") and raw.rstrip().endswith(b"data: [DONE]")


async def test_keepalive_comment_sent_while_upstream_is_silent(write_config, start_proxy, fake_upstream):
    fake_upstream.state.silent_s = 0.6
    proxy = await start_proxy(write_config(keepalive_s=0.2))
    async with aiohttp.ClientSession() as s:
        async with s.post(
            proxy.base + "/chat/completions",
            json={"model": "fake-silent", "stream": True, "messages": [{"role": "user", "content": "x"}]},
        ) as r:
            raw = await r.read()
    assert b": keep-alive\n\n" in raw
    assert raw.rstrip().endswith(b"data: [DONE]")
    # clients that ignore comments still see a well-formed stream
    assert raw.count(b"[DONE]") == 1
