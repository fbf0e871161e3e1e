"""POST /v1/messages and /v1/messages/count_tokens with the official anthropic SDK (and Claude Code's pattern)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest
from endpoint_helpers import receipt, spend_total, sse_events, usd, with_endpoint_models
from fake_anthropic import ANTHROPIC_REQUESTS, FIXTURES

from nextmodel_proxy.access.keys import KeySettings, create_key
from nextmodel_proxy.ledger import schema as db

CLAUDE_PRICE = {"input": "3", "output": "15", "cached_input": "0.30", "cache_write": "3.75"}
TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
    {
        "name": "get_time",
        "description": "Time in a zone",
        "input_schema": {"type": "object", "properties": {}},
    },
]
# What Claude Code sends each turn: a system prompt in text blocks with cache_control, tools, metadata.user_id,
# streaming, an anthropic-beta header; count_tokens first with the same system, tools and messages.
CLAUDE_CODE_SYSTEM = [
    {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
    {
        "type": "text",
        "text": "Help the user with software engineering tasks.",
        "cache_control": {"type": "ephemeral"},
    },
]
BETA = "claude-code-20250219,interleaved-thinking-2025-05-14"


def _anthropic_usage_cost(usage: dict[str, int]) -> Decimal:
    """Anthropic's rule: input_tokens at input, cache reads at the cache-read rate, writes at the write rate."""
    return usd(
        [
            (usage.get("input_tokens", 0), CLAUDE_PRICE["input"]),
            (usage.get("cache_read_input_tokens", 0), CLAUDE_PRICE["cached_input"]),
            (usage.get("cache_creation_input_tokens", 0), CLAUDE_PRICE["cache_write"]),
            (usage.get("output_tokens", 0), CLAUDE_PRICE["output"]),
        ]
    )


@pytest.fixture
async def mproxy(write_config: Any, start_proxy: Any) -> Any:
    return await start_proxy(with_endpoint_models(write_config()))


def _sdk(proxy: Any, key: str = "sk-client", **kw: Any) -> anthropic.AsyncAnthropic:
    base = proxy.base.removesuffix("/v1")
    return anthropic.AsyncAnthropic(base_url=base, api_key=key, max_retries=0, timeout=20, **kw)


async def _post(
    proxy: Any, path: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any, bytes]:
    async with aiohttp.ClientSession() as s, s.post(proxy.base + path, json=body, headers=headers) as r:
        return r.status, r.headers, await r.read()


# --- passthrough to kind: anthropic --------------------------------------------------------------------


async def test_passthrough_is_byte_faithful_and_keeps_anthropic_headers(
    mproxy: Any, fake_upstream: Any
) -> None:
    async with _sdk(mproxy, default_headers={"anthropic-beta": BETA}) as client:
        version = client.default_headers["anthropic-version"]
        raw = await client.messages.with_raw_response.create(
            model="claude-sonnet-4-5",
            max_tokens=64,
            messages=[{"role": "user", "content": "hi"}],
        )
    message = await raw.parse()
    assert message.content[0].text == "Hi! My name is Claude."
    assert raw.http_response.content == (FIXTURES / "message_text.json").read_bytes()
    assert "x-nextmodel-translated" not in raw.headers
    headers, body = fake_upstream.app[ANTHROPIC_REQUESTS][-1]
    assert headers["anthropic-beta"] == BETA and headers["anthropic-version"] == version  # the client's own
    assert headers["x-api-key"] == "sk-upstream-secret"  # the provider's key, never the client's
    assert body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
    }
    rec = await receipt(mproxy, raw.headers["x-nextmodel-receipt-id"])
    assert rec["endpoint"] == "messages" and rec["provider"] == "anthropic"
    assert Decimal(rec["billed_cost_usd"]) == _anthropic_usage_cost(
        {"input_tokens": 2095, "output_tokens": 503}
    )


async def test_passthrough_keeps_thinking_blocks_and_cache_control(mproxy: Any, fake_upstream: Any) -> None:
    turn = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "q", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "type": "thinking",
                    "thinking": "Let me think.",
                    "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h",
                },
                {"type": "text", "text": "a"},
            ],
        },
        {"role": "user", "content": "again"},
    ]
    status, _, _ = await _post(
        mproxy,
        "/messages",
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 2048,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": turn,
        },
    )
    assert status == 200
    _, sent = fake_upstream.app[ANTHROPIC_REQUESTS][-1]
    assert sent["messages"] == turn and sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}


async def test_passthrough_stream_with_tools_through_the_sdk_prices_cache_reads_and_writes(
    mproxy: Any,
) -> None:
    async with _sdk(mproxy) as client:
        async with client.messages.stream(
            model="claude-sonnet-4-5-tools",
            max_tokens=1024,
            tools=TOOLS,
            messages=[{"role": "user", "content": "weather in SF?"}],
        ) as stream:
            final = await stream.get_final_message()
            receipt_id = stream.response.headers["x-nextmodel-receipt-id"]
    tools = [b for b in final.content if b.type == "tool_use"]
    assert [t.name for t in tools] == ["get_weather", "get_time"]
    assert tools[0].input == {"location": "San Francisco, CA", "unit": "fahrenheit"}
    assert tools[1].input == {"timezone": "America/Los_Angeles", "label": 'café "open"'}
    rec = await receipt(mproxy, receipt_id)
    usage = {
        "input_tokens": 472,
        "cache_creation_input_tokens": 1024,
        "cache_read_input_tokens": 2048,
        "output_tokens": 89,
    }
    assert (rec["cached_tokens"], rec["cache_write_tokens"]) == (2048, 1024)
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (472 + 2048 + 1024, 89)
    assert Decimal(rec["billed_cost_usd"]) == _anthropic_usage_cost(usage)


async def test_passthrough_errors_keep_anthropic_shape_and_status(mproxy: Any) -> None:
    async with _sdk(mproxy) as client:
        with pytest.raises(anthropic.BadRequestError) as info:
            await client.messages.create(
                model="claude-sonnet-4-5-error", max_tokens=8, messages=[{"role": "user", "content": "x"}]
            )
        assert (
            info.value.body["type"] == "error" and info.value.body["error"]["type"] == "invalid_request_error"
        )
        with pytest.raises(anthropic.APIStatusError) as mid:
            async with client.messages.stream(
                model="claude-sonnet-4-5-midstream-error",
                max_tokens=8,
                messages=[{"role": "user", "content": "x"}],
            ) as stream:
                await stream.get_final_message()
        assert "Overloaded" in str(mid.value)


# --- translation to a chat upstream ---------------------------------------------------------------------


async def test_translated_stream_with_tools_through_the_sdk(mproxy: Any, fake_upstream: Any) -> None:
    async with _sdk(mproxy) as client:
        async with client.messages.stream(
            model="fake-tools",
            max_tokens=256,
            tools=TOOLS,
            system="Be brief.",
            messages=[{"role": "user", "content": "weather?"}],
            stop_sequences=["END"],
        ) as stream:
            events = [event.type async for event in stream]
            final = await stream.get_final_message()
            headers = stream.response.headers
    assert headers["x-nextmodel-translated"] == "openai-chat"
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "input_json" in events and "content_block_stop" in events
    assert final.stop_reason == "tool_use"
    assert [(b.id, b.name, b.input) for b in final.content] == [
        ("call_abc123", "get_weather", {"city": "Hà Nội", "unit": "celsius"}),
        ("call_def456", "get_time", {"tz": "Asia/Kolkata", "fmt": "24h°"}),
    ]
    sent = fake_upstream.state.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."} and sent["stop"] == ["END"]
    assert sent["tools"][0]["function"]["parameters"] == TOOLS[0]["input_schema"]
    rec = await receipt(mproxy, headers["x-nextmodel-receipt-id"])
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (
        final.usage.input_tokens,
        final.usage.output_tokens,
    )
    assert Decimal(rec["billed_cost_usd"]) == usd(
        [(final.usage.input_tokens, "1"), (final.usage.output_tokens, "2")]
    )


async def test_translated_non_stream_text_and_tool_results(mproxy: Any, fake_upstream: Any) -> None:
    async with _sdk(mproxy) as client:
        raw = await client.messages.with_raw_response.create(
            model="fake-basic",
            max_tokens=64,
            messages=[
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21C"},
                        {"type": "text", "text": "and tomorrow?"},
                    ],
                },
            ],
        )
    message = await raw.parse()
    assert raw.headers["x-nextmodel-translated"] == "openai-chat"
    assert message.content[0].text == "Echo: and tomorrow?" and message.stop_reason == "end_turn"
    sent = fake_upstream.state.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]
    assert sent[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert sent[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "21C"}


async def test_translated_errors_are_anthropic_shaped(mproxy: Any, fake_upstream: Any) -> None:
    async with _sdk(mproxy) as client:
        with pytest.raises(anthropic.BadRequestError) as info:
            await client.messages.create(
                model="fake-error-400", max_tokens=8, messages=[{"role": "user", "content": "x"}]
            )
        assert info.value.body["error"] == {
            "type": "invalid_request_error",
            "message": "Invalid value for 'temperature'.",
        }
        with pytest.raises(anthropic.APIStatusError):
            async with client.messages.stream(
                model="fake-broken", max_tokens=8, messages=[{"role": "user", "content": "x"}]
            ) as stream:
                await stream.get_final_message()
    status, _, body = await _post(
        mproxy,
        "/messages",
        {
            "model": "fake-broken",
            "max_tokens": 8,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    last = sse_events(body)[-1]
    assert status == 200 and last[0] == "error" and last[1]["error"]["type"] == "api_error"


async def test_malformed_bodies_get_anthropic_errors_and_no_upstream_call(
    mproxy: Any, fake_upstream: Any
) -> None:
    before = fake_upstream.state.calls, len(fake_upstream.app[ANTHROPIC_REQUESTS])
    cases = [
        ({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}]}, 400, "max_tokens"),
        ({"model": "claude-sonnet-4-5", "max_tokens": 5}, 400, "messages"),
        (
            {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            400,
            "role",
        ),
        (
            {"model": "no-such-model", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
            404,
            "no-such-model",
        ),
        ("not an object", 400, "JSON object"),
    ]
    for body, status, needle in cases:
        got, _, raw = await _post(mproxy, "/messages", body)
        obj = orjson.loads(raw)
        assert got == status and obj["type"] == "error" and needle in obj["error"]["message"], (body, raw)
        assert obj["error"]["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
    got, _, raw = await _post(
        mproxy,
        "/messages",
        {"model": "fake-basic", "max_tokens": 5, "top_k": 3, "messages": [{"role": "user", "content": "x"}]},
    )
    assert got == 400 and "top_k" in orjson.loads(raw)["error"]["message"]  # a chat upstream has no top_k
    assert (fake_upstream.state.calls, len(fake_upstream.app[ANTHROPIC_REQUESTS])) == before


async def test_proxy_key_as_x_api_key_or_bearer(write_config: Any, start_proxy: Any, tmp_path: Path) -> None:
    conn = db.open_db(tmp_path / "ledger.db")
    try:
        key = create_key(conn, KeySettings(project="cc"))[0].plaintext
        conn.commit()
    finally:
        conn.close()
    proxy = await start_proxy(write_config())
    msg = {"model": "fake-basic", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    async with _sdk(proxy, key) as client:  # x-api-key
        assert (await client.messages.create(**msg)).content[0].text == "Echo: hi"
    async with anthropic.AsyncAnthropic(
        base_url=proxy.base.removesuffix("/v1"), auth_token=key, api_key=None, max_retries=0
    ) as client:  # Authorization: Bearer (ANTHROPIC_AUTH_TOKEN)
        assert (
            await client.messages.count_tokens(model="fake-basic", messages=msg["messages"])
        ).input_tokens > 0
    async with _sdk(proxy, "sk-wrong") as client:
        with pytest.raises(anthropic.AuthenticationError) as info:
            await client.messages.create(**msg)
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "authentication_error"


# --- count_tokens and Claude Code's request pattern ----------------------------------------------------------


async def test_count_tokens_passes_through_to_anthropic_and_estimates_elsewhere(
    mproxy: Any, fake_upstream: Any
) -> None:
    messages = [{"role": "user", "content": "How many tokens is this?"}]
    async with _sdk(mproxy) as client:
        counted = await client.messages.count_tokens(
            model="claude-sonnet-4-5", messages=messages, system="sys", tools=TOOLS
        )
        estimated = await client.messages.with_raw_response.count_tokens(
            model="fake-basic", messages=messages, system="sys", tools=TOOLS
        )
    fields = {"system": "sys", "messages": messages, "tools": TOOLS}
    assert counted.input_tokens == 7 + len(orjson.dumps(fields)) // 5  # the upstream's own count
    _, sent = fake_upstream.app[ANTHROPIC_REQUESTS][-1]
    assert sent["model"] == "claude-sonnet-4-5" and sent["tools"] == TOOLS
    assert estimated.headers["x-nextmodel-token-count"] == "estimate"
    body = orjson.loads(estimated.http_response.content)
    assert body["estimated"] is True and body["input_tokens"] == (await estimated.parse()).input_tokens > 350


@pytest.mark.parametrize("model", ["claude-sonnet-4-5-same-tools", "fake-tools"])
async def test_claude_code_request_pattern(mproxy: Any, model: str, tmp_path: Path) -> None:
    """count_tokens, then a streaming turn with tools, then the tool results, as Claude Code does."""
    headers = {"anthropic-beta": BETA, "x-app": "cli"}
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what's the weather?", "cache_control": {"type": "ephemeral"}}
            ],
        }
    ]
    common = {"model": model, "system": CLAUDE_CODE_SYSTEM, "tools": TOOLS}
    async with _sdk(mproxy, default_headers=headers) as client:
        count = await client.messages.count_tokens(messages=messages, **common)
        assert count.input_tokens > 0
        async with client.messages.stream(
            messages=messages,
            max_tokens=1024,
            extra_body={"temperature": 1},
            metadata={"user_id": "user_abc_account_1_session_2"},
            **common,
        ) as s:
            first = await s.get_final_message()
            first_receipt = s.response.headers["x-nextmodel-receipt-id"]
        calls = [b for b in first.content if b.type == "tool_use"]
        assert first.stop_reason == "tool_use" and len(calls) == 2
        messages += [
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": c.id, "content": "ok"} for c in calls],
            },
        ]
        await client.messages.count_tokens(messages=messages, **common)
        async with client.messages.stream(messages=messages, max_tokens=1024, **common) as s:
            second = await s.get_final_message()
            second_receipt = s.response.headers["x-nextmodel-receipt-id"]
    assert second.content
    recs = [await receipt(mproxy, r) for r in (first_receipt, second_receipt)]
    assert all(r["endpoint"] == "messages" and r["status"] == 200 and r["error_code"] is None for r in recs)
    total = sum((Decimal(r["billed_cost_usd"]) for r in recs), Decimal(0))
    report = spend_total(tmp_path)
    assert (
        report["count"] == 2 and Decimal(report["billed_cost_usd"]) == total > 0
    )  # count_tokens: no receipt


async def test_messages_cache_replays_the_stored_stream_only_to_messages(
    mproxy: Any, fake_upstream: Any
) -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "temperature": 0,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    first = await _post(mproxy, "/messages", body)
    await receipt(mproxy, first[1]["x-nextmodel-receipt-id"])  # written after its cache entry (one writer)
    calls = len(fake_upstream.app[ANTHROPIC_REQUESTS])
    second = await _post(mproxy, "/messages", body)
    assert (first[1]["x-nextmodel-cache"], second[1]["x-nextmodel-cache"]) == ("miss", "hit")
    assert second[2] == first[2] == (FIXTURES / "stream_text.sse").read_bytes()
    assert len(fake_upstream.app[ANTHROPIC_REQUESTS]) == calls
    chat = await _post(
        mproxy,
        "/chat/completions",
        {"model": "claude-sonnet-4-5", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat[1]["x-nextmodel-cache"] == "miss"
    hit = await receipt(mproxy, second[1]["x-nextmodel-receipt-id"])
    fresh = await receipt(mproxy, first[1]["x-nextmodel-receipt-id"])
    assert hit["served_mode"] == "exact-cache" and hit["prompt_tokens"] == fresh["prompt_tokens"] == 25
    assert Decimal(fresh["billed_cost_usd"]) == _anthropic_usage_cost(
        {"input_tokens": 25, "output_tokens": 15}
    )


async def test_budgets_apply_to_messages_with_an_anthropic_shaped_refusal(
    write_config: Any, start_proxy: Any, fake_upstream: Any
) -> None:
    proxy = await start_proxy(
        write_config("projects:\n  cc: {budget: {amount: 0.000001, currency: USD, period: day}}\n")
    )
    before = len(fake_upstream.app[ANTHROPIC_REQUESTS])
    async with _sdk(proxy, default_headers={"x-nextmodel-project": "cc"}) as client:
        with pytest.raises(anthropic.RateLimitError) as info:
            await client.messages.create(
                model="claude-sonnet-4-5", max_tokens=4096, messages=[{"role": "user", "content": "hi"}]
            )
    assert info.value.body["error"]["type"] == "rate_limit_error"
    assert "budget" in info.value.body["error"]["message"]
    assert len(fake_upstream.app[ANTHROPIC_REQUESTS]) == before


@pytest.mark.parametrize("model", ["gemini-2.5-flash-tools", "demo-chat"])
async def test_messages_and_responses_translate_to_gemini_and_the_demo(mproxy: Any, model: str) -> None:
    async with _sdk(mproxy) as client:
        async with client.messages.stream(
            model=model,
            max_tokens=256,
            tools=TOOLS,
            messages=[{"role": "user", "content": "weather in Paris?"}],
        ) as s:
            final = await s.get_final_message()
            translated = s.response.headers["x-nextmodel-translated"]
    assert translated == ("gemini" if model.startswith("gemini") else "openai-chat")
    assert final.content and final.stop_reason in ("tool_use", "end_turn")
    status, headers, body = await _post(mproxy, "/responses", {"model": model, "input": "hi", "stream": True})
    events = sse_events(body)
    assert status == 200 and events[0][0] == "response.created" and events[-1][0] == "response.completed"
    assert headers["x-nextmodel-translated"] == translated


async def test_translated_tool_result_images_follow_as_a_user_image(mproxy: Any, fake_upstream: Any) -> None:
    png = "iVBORw0KGgo="
    body = {
        "model": "fake-basic",
        "max_tokens": 16,
        "messages": [
            {"role": "user", "content": "look at the screenshot"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_9", "name": "screenshot", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_9",
                        "content": [
                            {"type": "text", "text": "taken"},
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/png", "data": png},
                            },
                        ],
                    }
                ],
            },
        ],
    }
    status, _, _ = await _post(mproxy, "/messages", body)
    assert status == 200
    sent = fake_upstream.state.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]
    assert sent[2]["content"].startswith("taken[image 1")
    assert sent[3]["content"] == [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]


async def test_passthrough_prices_five_minute_and_one_hour_cache_writes_apart(mproxy: Any) -> None:
    status, headers, body = await _post(
        mproxy,
        "/messages",
        {"model": "claude-ttl", "max_tokens": 512, "messages": [{"role": "user", "content": "q"}]},
    )
    assert status == 200 and body == (FIXTURES / "message_cache_ttl.json").read_bytes()
    # message_cache_ttl.json: 120 fresh input, 4000 cache reads, writes 1000 for 5 minutes + 2000 for 1 hour, 350 out
    expected = usd([(120, "5"), (4000, "0.5"), (1000, "6.25"), (2000, "10"), (350, "25")])
    rec = await receipt(mproxy, headers["x-nextmodel-receipt-id"])
    assert (rec["cached_tokens"], rec["cache_write_tokens"]) == (4000, 3000)
    assert Decimal(rec["billed_cost_usd"]) == expected
