"""Gemini generateContent <-> OpenAI chat translation, on recorded wire formats and through a fake server."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from aiohttp import web
from fake_gemini import GEMINI_REQUESTS, add_routes
from translate_helpers import accumulate, completion_of, drive, make_target, open_and_collect, parse_events

from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.upstream.gemini import model_url
from nextmodel_proxy.upstream.gemini_stream import GeminiStream
from nextmodel_proxy.upstream.gemini_translate import (
    from_error,
    from_response,
    map_usage,
    to_generate_request,
)

FIX = Path(__file__).parent / "fixtures" / "gemini"
KEY_ENV = "NM_TEST_GEMINI_KEY"
SIG_A = "CtwFAVSoXO5Bzl3GKiBqexdUdCg7y3gHtQmd0Kfq1Yj6V8WP"


def model(upstream_id: str = "gemini-2.5-flash"):
    return make_target("gemini", "http://unused", upstream_id).model


def test_request_maps_system_turns_images_tools_signatures_and_function_responses():
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4A=="}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_temp", "arguments": '{"city": "Paris"}'},
                        "extra_content": {"google": {"thought_signature": SIG_A}},
                    },
                    {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": '{"celsius": 18}'},
            {"role": "tool", "tool_call_id": "call_b", "content": "09:00"},
            {
                "role": "assistant",
                "content": "It is 18C.",
                "extra_content": {"google": {"thought_signature": "sig-text"}},
            },
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_temp",
                    "description": "Temperature",
                    "parameters": {"type": "object", "additionalProperties": False},
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_temp"}},
        "temperature": 0.3,
        "top_p": 0.8,
        "max_tokens": 200,
        "stop": ["END"],
        "seed": 4,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "r", "schema": {"type": "object"}},
        },
    }
    out = to_generate_request(body, model())
    assert out["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert out["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "Weather here?"},
                {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4A=="}},
            ],
        },
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_temp", "args": {"city": "Paris"}}, "thoughtSignature": SIG_A},
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_temp", "response": {"celsius": 18}}},
                {"functionResponse": {"name": "get_time", "response": {"output": "09:00"}}},
            ],
        },
        {"role": "model", "parts": [{"text": "It is 18C.", "thoughtSignature": "sig-text"}]},
        {"role": "user", "parts": [{"text": "Thanks"}]},
    ]
    assert out["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_temp",
                    "description": "Temperature",
                    "parametersJsonSchema": {"type": "object", "additionalProperties": False},
                }
            ]
        }
    ]
    assert out["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_temp"]}
    }
    assert out["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.8,
        "seed": 4,
        "maxOutputTokens": 200,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
    }


def test_reasoning_effort_sets_a_thinking_budget_and_asks_for_thoughts():
    body = {"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "low"}
    assert to_generate_request(body, model())["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 1024,
        "includeThoughts": True,
    }


def test_tool_result_for_an_unknown_call_id_is_a_400():
    body = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "tool", "tool_call_id": "nope", "content": "x"},
        ]
    }
    with pytest.raises(ProxyError) as info:
        to_generate_request(body, model())
    assert info.value.param == "messages[1].tool_call_id"


@pytest.mark.parametrize(("param", "value"), [("n", 2), ("logprobs", True), ("logit_bias", {"1": 5})])
def test_parameters_gemini_cannot_honour_are_400_naming_them(param, value):
    with pytest.raises(ProxyError) as info:
        to_generate_request({"messages": [{"role": "user", "content": "hi"}], param: value}, model())
    assert (info.value.status, info.value.code, info.value.param) == (400, "unsupported_parameter", param)


def test_remote_image_urls_are_refused_because_gemini_needs_inline_data():
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
        ]
    }
    with pytest.raises(ProxyError) as info:
        to_generate_request(body, model())
    assert info.value.code == "unsupported_parameter"


def test_text_response_maps_usage_with_cached_and_thought_tokens_and_keeps_the_signature():
    raw = orjson.loads(from_response((FIX / "response_text.json").read_bytes(), "fallback"))
    out = completion_of(orjson.dumps(raw))
    assert out.choices[0].message.content == "AI learns patterns from data to make predictions."
    assert out.choices[0].finish_reason == "stop"
    assert out.id == "mPzvaN2YJtyWz7IPmsDLwAo" and out.model == "gemini-2.5-flash"
    assert raw["usage"] == {
        "prompt_tokens": 1200,
        "completion_tokens": 11 + 48,
        "total_tokens": 1259,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 48},
    }
    assert raw["choices"][0]["message"]["extra_content"] == {
        "google": {"thought_signature": "CiIBVKhc7tYyP0HzdlKc0w5h1eXt0T3mnjfhqz1R1vW3v7S0"}
    }


def test_function_call_response_gives_tool_calls_with_the_thought_signature_on_the_first():
    raw = orjson.loads(from_response((FIX / "response_function_calls.json").read_bytes(), "fallback"))
    out = completion_of(orjson.dumps(raw))
    calls = out.choices[0].message.tool_calls
    assert [(c.function.name, orjson.loads(c.function.arguments)) for c in calls] == [
        ("get_current_temperature", {"location": "Paris"}),
        ("get_current_temperature", {"location": "London", "unit": "celsius"}),
    ]
    assert len({c.id for c in calls}) == 2
    assert out.choices[0].finish_reason == "tool_calls" and out.choices[0].message.content is None
    sent = raw["choices"][0]["message"]["tool_calls"]
    assert (
        sent[0]["extra_content"] == {"google": {"thought_signature": SIG_A}}
        and "extra_content" not in sent[1]
    )
    assert raw["usage"]["completion_tokens"] == 30 + 122


def test_signature_round_trips_from_a_response_into_the_next_request():
    answer = orjson.loads(from_response((FIX / "response_function_calls.json").read_bytes(), "m"))
    message = answer["choices"][0]["message"]
    body = {
        "messages": [
            {"role": "user", "content": "Paris and London?"},
            message,
            {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "18"},
            {"role": "tool", "tool_call_id": message["tool_calls"][1]["id"], "content": "12"},
        ]
    }
    parts = to_generate_request(body, model())["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == SIG_A and "thoughtSignature" not in parts[1]


def test_malformed_function_call_is_an_error_not_an_empty_stop():
    with pytest.raises(ProxyError) as info:
        from_response((FIX / "response_malformed.json").read_bytes(), "m")
    assert info.value.status == 502 and info.value.code == "upstream_error"
    assert "MALFORMED_FUNCTION_CALL" in info.value.message and "Malformed function call" in info.value.message


def test_google_error_body_becomes_openai_error_keeping_the_status():
    status, body = from_error(400, (FIX / "error_invalid_argument.json").read_bytes())
    assert status == 400
    assert orjson.loads(body)["error"] == {
        "message": "API key not valid. Please pass a valid API key.",
        "type": "invalid_request_error",
        "param": None,
        "code": "INVALID_ARGUMENT",
    }


def test_text_stream_ends_with_usage_and_done():
    chunks, done, error = parse_events(drive(GeminiStream("m"), (FIX / "stream_text.sse").read_bytes()))
    final = accumulate(chunks)
    assert done and error is None
    assert final.choices[0].message.content == "AI, or artificial intelligence, learns patterns from data."
    assert final.choices[0].finish_reason == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 51,
        "total_tokens": 60,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 40},
    }


def test_stream_with_thoughts_text_and_two_function_calls_keeps_every_call():
    chunks, done, _ = parse_events(drive(GeminiStream("m"), (FIX / "stream_tools.sse").read_bytes()))
    final = accumulate(chunks)
    msg = final.choices[0].message
    assert done and msg.content == "Let me look both up."
    assert [(c.function.name, c.function.arguments) for c in msg.tool_calls] == [
        ("get_current_temperature", '{"location":"Paris","note":"caf\u00e9 \\"open\\""}'),
        ("get_local_time", '{"city":"London"}'),
    ]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert [d["tool_calls"][0]["index"] for d in deltas if "tool_calls" in d] == [0, 1]
    assert any(d.get("reasoning_content", "").startswith("**Checking two cities**") for d in deltas)
    first_call = next(d["tool_calls"][0] for d in deltas if "tool_calls" in d)
    assert first_call["extra_content"] == {"google": {"thought_signature": SIG_A}}
    assert final.choices[0].finish_reason == "tool_calls"
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 64}


def test_stream_ending_in_malformed_function_call_ends_with_an_error_event():
    events = drive(GeminiStream("m"), (FIX / "stream_malformed.sse").read_bytes())
    _, done, error = parse_events(events)
    assert not done and "MALFORMED_FUNCTION_CALL" in error["message"] and error["code"] == "upstream_error"


def test_stream_cut_before_a_finish_reason_is_left_without_done():
    raw = (FIX / "stream_text.sse").read_bytes()
    _, done, error = parse_events(drive(GeminiStream("m"), raw[: raw.rindex(b"data: ")]))
    assert not done and error is None


def test_model_url_accepts_a_bare_host_or_a_versioned_base():
    assert model_url("https://generativelanguage.googleapis.com", "models/gemini-2.5-flash", True) == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert (
        model_url("https://example.test/v1beta", "g", False)
        == "https://example.test/v1beta/models/g:generateContent"
    )


def test_usage_counts_tool_use_prompt_tokens_as_prompt():
    usage = map_usage({"promptTokenCount": 10, "toolUsePromptTokenCount": 5, "candidatesTokenCount": 2})
    assert (usage["prompt_tokens"], usage["total_tokens"]) == (15, 17)


# --- through a real fake server ------------------------------------------------------------------


@pytest.fixture
async def gemini_server(aiohttp_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "goog-test-key")
    app = web.Application()
    add_routes(app)
    return await aiohttp_server(app)


async def _open(server, upstream_id: str, body: dict):
    return await open_and_collect(
        "gemini",
        str(server.make_url("")).rstrip("/"),
        upstream_id,
        body,
        KEY_ENV,
        {"Authorization": "Bearer nm-proxy-key"},
    )


HELLO = {"model": "gemini", "messages": [{"role": "user", "content": "Explain AI"}]}


async def test_adapter_posts_generate_content_with_the_api_key_header(gemini_server):
    call, body = await _open(gemini_server, "gemini-2.5-flash", HELLO)
    assert call.status == 200 and not call.is_stream and call.upstream_request_id == "goog-fake"
    assert completion_of(body).usage.prompt_tokens_details.cached_tokens == 1024
    headers, query, model_id, sent = gemini_server.app[GEMINI_REQUESTS][-1]
    assert headers["x-goog-api-key"] == "goog-test-key" and "Authorization" not in headers
    assert model_id == "gemini-2.5-flash" and query == {}
    assert sent == {"contents": [{"role": "user", "parts": [{"text": "Explain AI"}]}]}


async def test_adapter_stream_uses_alt_sse_and_accumulates_in_the_openai_sdk(gemini_server):
    call, events = await _open(gemini_server, "gemini-2.5-flash-tools", {**HELLO, "stream": True})
    assert call.is_stream and call.headers["Content-Type"] == "text/event-stream"
    assert gemini_server.app[GEMINI_REQUESTS][-1][1] == {"alt": "sse"}
    chunks, done, _ = parse_events(events)
    final = accumulate(chunks)
    assert done and [c.function.name for c in final.choices[0].message.tool_calls] == [
        "get_current_temperature",
        "get_local_time",
    ]


async def test_adapter_malformed_function_call_answers_an_error_status(gemini_server):
    call, body = await _open(gemini_server, "gemini-2.5-flash-malformed", HELLO)
    assert call.status == 502 and orjson.loads(body)["error"]["code"] == "upstream_error"


async def test_adapter_upstream_error_keeps_status_and_is_openai_shaped(gemini_server):
    call, body = await _open(gemini_server, "gemini-2.5-flash-error", {**HELLO, "stream": True})
    assert call.status == 400 and not call.is_stream
    assert orjson.loads(body)["error"]["code"] == "INVALID_ARGUMENT"


async def test_adapter_midstream_error_reaches_the_client_as_an_error_event(gemini_server):
    call, events = await _open(gemini_server, "gemini-2.5-flash-midstream-error", {**HELLO, "stream": True})
    chunks, done, error = parse_events(events)
    assert call.status == 200 and not done
    assert (
        error["code"] == "UNAVAILABLE"
        and error["type"] == "api_error"
        and chunks[-1]["choices"][0]["delta"]["content"].startswith("AI")
    )


def test_midstream_quota_error_keeps_its_openai_type():
    raw = b'data: {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}}\r\n\r\n'
    _, done, error = parse_events(drive(GeminiStream("m"), raw))
    assert not done and error["type"] == "rate_limit_error" and error["code"] == "RESOURCE_EXHAUSTED"


def test_blocked_prompt_without_candidates_is_a_content_filter_finish():
    raw = orjson.dumps(
        {
            "promptFeedback": {"blockReason": "SAFETY"},
            "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
            "modelVersion": "g",
        }
    )
    out = completion_of(from_response(raw, "g"))
    assert out.choices[0].finish_reason == "content_filter" and out.usage.prompt_tokens == 7


def test_max_completion_tokens_wins_over_max_tokens_and_null_falls_back():
    base = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
    assert to_generate_request({**base, "max_completion_tokens": 9}, model())["generationConfig"] == {
        "maxOutputTokens": 9
    }
    assert to_generate_request({**base, "max_completion_tokens": None}, model())["generationConfig"] == {
        "maxOutputTokens": 50
    }
