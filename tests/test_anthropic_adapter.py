"""Anthropic Messages <-> OpenAI chat translation, on recorded wire formats and through a fake server."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from aiohttp import web
from fake_anthropic import ANTHROPIC_REQUESTS, add_routes
from translate_helpers import accumulate, completion_of, drive, make_target, open_and_collect, parse_events

from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.upstream.anthropic_stream import AnthropicStream
from nextmodel_proxy.upstream.anthropic_translate import (
    from_error,
    from_message,
    map_usage,
    to_messages_request,
)
from nextmodel_proxy.upstream.registry import ADAPTERS, adapter_for

FIX = Path(__file__).parent / "fixtures" / "anthropic"
KEY_ENV = "NM_TEST_ANTHROPIC_KEY"
WEATHER_ARGS = '{"location": "San Francisco, CA", "unit": "fahrenheit"}'
TIME_ARGS = '{"timezone": "America/Los_Angeles", "label": "caf\u00e9 \\"open\\""}'


def model(upstream_id: str = "claude-sonnet-4-5", max_output: int | None = None):
    return make_target("anthropic", "http://unused", upstream_id, max_output=max_output).model


def test_request_maps_system_turns_images_tools_and_tool_results():
    body = {
        "model": "claude",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "system", "content": [{"type": "text", "text": "Use tools."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image, and the weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                    },
                    {
                        "id": "toolu_2",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": "{}"},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "09:00"}]},
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather",
                    "parameters": {"type": "object", "properties": {}},
                },
            },
            {"type": "function", "function": {"name": "get_time"}},
        ],
        "tool_choice": "required",
        "stop": "END",
        "max_completion_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "stream": True,
        "user": "u-1",
    }
    out = to_messages_request(body, model())
    assert out["model"] == "claude-sonnet-4-5"
    assert out["system"] == [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}]
    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this image, and the weather?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "09:00"},
                {"type": "text", "text": "Thanks"},
            ],
        },
    ]
    assert out["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather",
            "input_schema": {"type": "object", "properties": {}},
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert out["tool_choice"] == {"type": "any"}
    assert out["stop_sequences"] == ["END"]
    assert (out["max_tokens"], out["temperature"], out["top_p"], out["stream"]) == (300, 0.2, 0.9, True)
    assert out["metadata"] == {"user_id": "u-1"}


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ],
)
def test_tool_choice_maps_to_anthropic_tool_choice(choice, parallel, expected):
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "tool_choice": choice,
        "parallel_tool_calls": parallel,
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    assert to_messages_request(body, model())["tool_choice"] == expected


def test_max_tokens_defaults_to_model_max_output_then_4096():
    body = {"messages": [{"role": "user", "content": "hi"}]}
    assert to_messages_request(body, model(max_output=64000))["max_tokens"] == 64000
    assert to_messages_request(body, model())["max_tokens"] == 4096
    assert to_messages_request({**body, "max_tokens": 10}, model(max_output=64000))["max_tokens"] == 10


def test_json_schema_response_format_becomes_a_system_instruction_with_the_schema():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    body = {
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }
    system = to_messages_request(body, model())["system"]
    assert system[0] == {"type": "text", "text": "S"}
    assert system[1]["text"].endswith(orjson.dumps(schema).decode())
    body["response_format"] = {"type": "json_object"}
    assert "JSON object" in to_messages_request(body, model())["system"][1]["text"]


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("n", 2),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("logit_bias", {"50256": -100}),
        ("presence_penalty", 0.5),
        ("frequency_penalty", 1),
        ("seed", 7),
    ],
)
def test_parameters_anthropic_cannot_honour_are_400_naming_them(param, value):
    body = {"messages": [{"role": "user", "content": "hi"}], param: value}
    with pytest.raises(ProxyError) as info:
        to_messages_request(body, model())
    assert (info.value.status, info.value.code, info.value.param) == (400, "unsupported_parameter", param)


def test_harmless_defaults_of_unsupported_parameters_are_accepted():
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "n": 1,
        "logprobs": False,
        "presence_penalty": 0,
        "frequency_penalty": 0,
        "logit_bias": {},
        "seed": None,
    }
    assert to_messages_request(body, model())["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    ]


def test_text_message_maps_to_chat_completion():
    out = completion_of(from_message((FIX / "message_text.json").read_bytes(), "fallback"))
    assert out.id == "msg_013Zva2CMHLNnXjNJJKqJ2EF"
    assert out.model == "claude-sonnet-4-5-20250929"
    assert out.choices[0].message.content == "Hi! My name is Claude."
    assert out.choices[0].finish_reason == "stop"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens) == (2095, 503, 2598)


def test_tool_message_keeps_every_tool_call_and_maps_cache_usage():
    raw = orjson.loads(from_message((FIX / "message_tools_cache.json").read_bytes(), "fallback"))
    out = completion_of(orjson.dumps(raw))
    msg = out.choices[0].message
    assert msg.content == "I'll check the current weather in San Francisco for you."
    assert [(c.id, c.function.name, orjson.loads(c.function.arguments)) for c in msg.tool_calls] == [
        (
            "toolu_01A09q90qw90lq917835lq9",
            "get_weather",
            {"location": "San Francisco, CA", "unit": "celsius"},
        ),
        ("toolu_01B19q90qw90lq917835lq0", "get_time", {"timezone": "America/Los_Angeles"}),
    ]
    assert out.choices[0].finish_reason == "tool_calls"
    usage = raw["usage"]
    assert usage["prompt_tokens"] == 50 + 100000 + 248
    assert usage["prompt_tokens_details"] == {"cached_tokens": 100000, "cache_write_tokens": 248}
    assert usage["cache_creation_input_tokens"] == 248 and usage["cache_read_input_tokens"] == 100000
    assert usage["completion_tokens"] == 503 and usage["total_tokens"] == 100801


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons_map_to_openai_finish_reasons(stop, finish):
    msg = orjson.loads((FIX / "message_text.json").read_bytes())
    msg["stop_reason"] = stop
    assert orjson.loads(from_message(orjson.dumps(msg), "m"))["choices"][0]["finish_reason"] == finish


def test_anthropic_errors_become_openai_errors_keeping_the_status():
    status, body = from_error(400, (FIX / "error_invalid_request.json").read_bytes())
    err = orjson.loads(body)["error"]
    assert status == 400
    assert err["type"] == "invalid_request_error" and err["code"] == "invalid_request_error"
    assert err["message"].startswith("messages: roles must alternate")
    assert set(err) == {"message", "type", "param", "code"}


def test_overloaded_529_becomes_503_api_error():
    status, body = from_error(529, (FIX / "error_overloaded.json").read_bytes())
    assert status == 503
    assert orjson.loads(body)["error"] == {
        "message": "Overloaded",
        "type": "api_error",
        "param": None,
        "code": "overloaded_error",
    }


def test_non_json_error_body_still_gives_an_openai_error():
    status, body = from_error(502, b"<html>bad gateway</html>")
    assert status == 502 and orjson.loads(body)["error"]["code"] == "upstream_error"


def test_stream_with_text_and_two_tool_calls_keeps_every_name_and_argument_byte():
    events = drive(AnthropicStream("claude"), (FIX / "stream_tools.sse").read_bytes())
    chunks, done, error = parse_events(events)
    assert done and error is None
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    final = accumulate(chunks)
    msg = final.choices[0].message
    assert msg.content == "Okay, let's check the weather for San Francisco, CA:"
    assert [(c.index, c.id, c.function.name) for c in _tool_deltas(chunks) if c.id] == [
        (0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather"),
        (1, "toolu_01D7FLrfh4GYq7yT1ULFeyMV", "get_time"),
    ]
    assert [c.function.arguments for c in msg.tool_calls] == [WEATHER_ARGS, TIME_ARGS]
    assert [c.function.arguments for c in msg.tool_calls] == _fixture_arguments("stream_tools.sse")
    assert final.choices[0].finish_reason == "tool_calls"
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["prompt_tokens"] == 472 + 1024 + 2048 and usage["completion_tokens"] == 89
    assert usage["prompt_tokens_details"] == {"cached_tokens": 2048, "cache_write_tokens": 1024}
    assert usage["cache_creation_input_tokens"] == 1024


def _fixture_arguments(name: str) -> list[str]:
    """Every partial_json fragment of the recorded stream, joined per content block."""
    joined: dict[int, str] = {}
    for line in (FIX / name).read_text().splitlines():
        if line.startswith("data: ") and "input_json_delta" in line:
            ev = orjson.loads(line[6:])
            joined[ev["index"]] = joined.get(ev["index"], "") + ev["delta"]["partial_json"]
    return [joined[k] for k in sorted(joined)]


def _tool_deltas(chunks):
    from openai.types.chat import ChatCompletionChunk

    out = []
    for obj in chunks:
        for choice in ChatCompletionChunk.model_validate(obj).choices:
            out.extend(choice.delta.tool_calls or [])
    return out


def test_text_stream_maps_to_chunks_and_final_usage():
    chunks, done, _ = parse_events(drive(AnthropicStream("claude"), (FIX / "stream_text.sse").read_bytes()))
    final = accumulate(chunks)
    assert done and final.choices[0].message.content == "Hello!"
    assert final.choices[0].finish_reason == "stop"
    assert chunks[-1]["usage"]["prompt_tokens"] == 25 and chunks[-1]["usage"]["completion_tokens"] == 15


def test_midstream_error_becomes_an_error_event_and_the_stream_ends():
    events = drive(AnthropicStream("claude"), (FIX / "stream_midstream_error.sse").read_bytes())
    chunks, done, error = parse_events(events)
    assert not done
    assert error == {"message": "Overloaded", "type": "api_error", "param": None, "code": "overloaded_error"}
    assert events[-1].startswith(b'data: {"error"')
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Once upon"


def test_stream_cut_before_message_stop_is_left_without_done():
    raw = (FIX / "stream_text.sse").read_bytes()
    cut = raw[: raw.index(b"event: message_delta")]
    _, done, error = parse_events(drive(AnthropicStream("claude"), cut))
    assert not done and error is None


def test_tool_without_argument_deltas_gets_an_empty_json_object():
    s = AnthropicStream("claude")
    ev = [
        {"type": "message_start", "message": {"id": "msg_1", "model": "c", "usage": {"input_tokens": 3}}},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_x", "name": "now", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}},
        {"type": "message_stop"},
    ]
    raw = b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in ev)
    chunks, done, _ = parse_events(drive(s, raw))
    assert done and accumulate(chunks).choices[0].message.tool_calls[0].function.arguments == "{}"


# --- through a real fake server ------------------------------------------------------------------


@pytest.fixture
async def anthropic_server(aiohttp_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-ant-test")
    app = web.Application()
    add_routes(app)
    return await aiohttp_server(app)


async def _open(server, upstream_id: str, body: dict):
    return await open_and_collect(
        "anthropic",
        str(server.make_url("")).rstrip("/"),
        upstream_id,
        body,
        KEY_ENV,
        {"Authorization": "Bearer nm-proxy-key", "anthropic-beta": "prompt-caching"},
    )


HELLO = {
    "model": "claude",
    "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hello"}],
}


async def test_adapter_sends_the_messages_request_with_key_and_version(anthropic_server):
    call, body = await _open(anthropic_server, "claude-sonnet-4-5", HELLO)
    assert call.status == 200 and not call.is_stream
    assert completion_of(body).choices[0].message.content == "Hi! My name is Claude."
    assert call.upstream_request_id == "req_fake_ok"
    headers, sent = anthropic_server.app[ANTHROPIC_REQUESTS][-1]
    assert headers["x-api-key"] == "sk-ant-test" and headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "prompt-caching" and "Authorization" not in headers
    assert sent == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "system": [{"type": "text", "text": "Be kind."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
    }


async def test_adapter_non_stream_tools_answer_parses_as_openai_completion(anthropic_server):
    call, body = await _open(anthropic_server, "claude-sonnet-4-5-tools", HELLO)
    out = completion_of(body)
    assert [c.function.name for c in out.choices[0].message.tool_calls] == ["get_weather", "get_time"]
    assert orjson.loads(body)["usage"]["cache_creation_input_tokens"] == 248


async def test_adapter_stream_through_fake_server_accumulates_in_the_openai_sdk(anthropic_server):
    call, events = await _open(anthropic_server, "claude-sonnet-4-5-tools", {**HELLO, "stream": True})
    assert call.status == 200 and call.is_stream
    assert call.headers["Content-Type"] == "text/event-stream"
    chunks, done, error = parse_events(events)
    final = accumulate(chunks)
    assert done and error is None
    assert [c.function.arguments for c in final.choices[0].message.tool_calls][0] == WEATHER_ARGS
    assert final.choices[0].message.content.startswith("Okay")


async def test_adapter_upstream_error_keeps_status_and_is_openai_shaped(anthropic_server):
    call, body = await _open(anthropic_server, "claude-sonnet-4-5-error", {**HELLO, "stream": True})
    assert call.status == 400 and not call.is_stream
    assert orjson.loads(body)["error"]["type"] == "invalid_request_error"
    call, body = await _open(anthropic_server, "claude-sonnet-4-5-overloaded", HELLO)
    assert call.status == 503 and orjson.loads(body)["error"]["code"] == "overloaded_error"


async def test_adapter_midstream_error_reaches_the_client_as_an_error_event(anthropic_server):
    call, events = await _open(
        anthropic_server, "claude-sonnet-4-5-midstream-error", {**HELLO, "stream": True}
    )
    _, done, error = parse_events(events)
    assert call.status == 200 and not done and error["code"] == "overloaded_error"


async def test_unsupported_parameter_is_refused_before_anything_is_sent(anthropic_server):
    with pytest.raises(ProxyError) as info:
        await _open(anthropic_server, "claude-sonnet-4-5", {**HELLO, "n": 3})
    assert info.value.param == "n" and anthropic_server.app[ANTHROPIC_REQUESTS] == []


def test_registry_maps_each_kind_to_its_adapter():
    assert set(ADAPTERS) >= {"openai", "anthropic", "gemini"}
    assert type(adapter_for("anthropic")).__name__ == "AnthropicAdapter"
    with pytest.raises(KeyError):
        adapter_for("nope")


def test_usage_without_cache_fields_counts_zero_cache_tokens():
    details = map_usage({"input_tokens": 7, "output_tokens": 2})["prompt_tokens_details"]
    assert details == {"cached_tokens": 0, "cache_write_tokens": 0}


def test_cache_writes_are_part_of_prompt_tokens_and_named_in_openai_details():
    usage = map_usage(
        {
            "input_tokens": 10,
            "cache_read_input_tokens": 30,
            "cache_creation_input_tokens": 60,
            "output_tokens": 5,
        }
    )
    assert usage["prompt_tokens"] == 100 and usage["total_tokens"] == 105
    assert usage["prompt_tokens_details"] == {"cached_tokens": 30, "cache_write_tokens": 60}


def test_midstream_rate_limit_error_keeps_its_openai_type():
    raw = b'event: error\ndata: {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}\n\n'
    _, done, error = parse_events(drive(AnthropicStream("claude"), raw))
    assert not done and error["type"] == "rate_limit_error" and error["code"] == "rate_limit_error"


def test_reasoning_effort_enables_thinking_with_a_budget_below_max_tokens():
    body = {
        "messages": [{"role": "user", "content": "27*453?"}],
        "reasoning_effort": "medium",
        "max_tokens": 20000,
    }
    assert to_messages_request(body, model())["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    body["max_tokens"] = 5000
    assert to_messages_request(body, model())["thinking"]["budget_tokens"] == 4999
    assert "thinking" not in to_messages_request({**body, "reasoning_effort": "none"}, model())
    with pytest.raises(ProxyError) as info:
        to_messages_request({**body, "max_tokens": 1000}, model())
    assert info.value.param == "max_tokens"


def test_streamed_thinking_becomes_reasoning_content_and_signed_blocks_that_go_back_next_turn():
    chunks, done, _ = parse_events(
        drive(AnthropicStream("claude"), (FIX / "stream_thinking.sse").read_bytes())
    )
    assert done and all(c["choices"] for c in chunks)  # no usage reported, so no usage chunk
    deltas = [c["choices"][0]["delta"] for c in chunks]
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    assert (
        reasoning == "Let me solve this step by step:\n\n1. First break down 27 * 453\n2. 453 = 400 + 50 + 3"
    )
    extra = next(d["extra_content"] for d in deltas if "extra_content" in d)
    block = extra["anthropic"]["thinking_blocks"][0]
    assert block == {
        "type": "thinking",
        "thinking": reasoning,
        "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds...",
    }
    final = accumulate(chunks)
    assert final.choices[0].message.content == "27 * 453 = 12,231"
    history = {"role": "assistant", "content": final.choices[0].message.content, "extra_content": extra}
    out = to_messages_request(
        {
            "messages": [
                {"role": "user", "content": "27*453?"},
                history,
                {"role": "user", "content": "Thanks"},
            ]
        },
        model(),
    )
    assert out["messages"][1]["content"] == [block, {"type": "text", "text": "27 * 453 = 12,231"}]


def test_non_stream_thinking_blocks_are_kept_for_the_next_turn():
    msg = {
        "id": "msg_t",
        "type": "message",
        "role": "assistant",
        "model": "c",
        "stop_reason": "end_turn",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "EmwKAhgB"},
            {"type": "text", "text": "42"},
        ],
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }
    out = orjson.loads(from_message(orjson.dumps(msg), "c"))["choices"][0]["message"]
    assert out["reasoning_content"] == "hmm" and out["content"] == "42"
    assert out["extra_content"]["anthropic"]["thinking_blocks"] == msg["content"][:2]


def test_cache_control_marks_on_system_and_user_text_parts_reach_anthropic():
    mark = {"type": "ephemeral"}
    body = {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Long manual", "cache_control": mark}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Long doc", "cache_control": mark},
                    {"type": "text", "text": "Question"},
                ],
            },
        ]
    }
    out = to_messages_request(body, model())
    assert out["system"] == [{"type": "text", "text": "Long manual", "cache_control": mark}]
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "Long doc", "cache_control": mark},
        {"type": "text", "text": "Question"},
    ]
