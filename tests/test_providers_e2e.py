"""Native Anthropic and Gemini providers through the whole proxy, seen by the official openai SDK.

The fake upstream (tests/fake_upstream.py) also speaks the Messages and generateContent APIs; conftest's
`anthropic` and `gemini` providers point at it and the model name picks the scenario. The client must see
the same OpenAI shapes whatever the provider.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from fake_anthropic import ANTHROPIC_REQUESTS
from fake_gemini import GEMINI_REQUESTS

CLAUDE, GEMINI = "claude-sonnet-4-5", "gemini-2.5-flash"
BOTH = pytest.mark.parametrize("base", [CLAUDE, GEMINI])
PROVIDER = {CLAUDE: "anthropic", GEMINI: "gemini"}
FIXTURES = Path(__file__).parent / "fixtures"
HELLO = [{"role": "user", "content": "Hello there"}]
ASK = [{"role": "user", "content": "What is the weather in two places?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    }
]
GEMINI_SIGNATURE = "CtwFAVSoXO5Bzl3GKiBqexdUdCg7y3gHtQmd0Kfq1Yj6V8WP"


def base_of(model: str) -> str:
    return CLAUDE if model.startswith("claude") else GEMINI


def sent_upstream(fake_upstream: Any, base: str) -> list[dict[str, Any]]:
    """The provider-dialect request bodies the fake upstream received for this provider."""
    if base == CLAUDE:
        return [body for _, body in fake_upstream.app[ANTHROPIC_REQUESTS]]
    return [body for *_, body in fake_upstream.app[GEMINI_REQUESTS]]


@dataclass
class Streamed:
    """What an SDK stream delivered, accumulated the way a client would."""

    chunks: list[Any] = field(default_factory=list)
    text: str = ""
    reasoning: str = ""
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish: str | None = None
    usage_chunks: list[Any] = field(default_factory=list)

    def add(self, chunk: Any) -> None:
        self.chunks.append(chunk)
        if chunk.usage is not None:
            self.usage_chunks.append(chunk)
        for choice in chunk.choices:
            delta = choice.delta
            self.text += delta.content or ""
            self.reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
            for tc in delta.tool_calls or []:
                call = self.calls.setdefault(tc.index, {"id": None, "name": "", "arguments": "", "extra": {}})
                call["id"] = call["id"] or tc.id
                call["name"] += (tc.function.name or "") if tc.function else ""
                call["arguments"] += (tc.function.arguments or "") if tc.function else ""
                call["extra"].update(tc.model_extra or {})
            self.finish = choice.finish_reason or self.finish

    def named_calls(self) -> list[tuple[str, str]]:
        return [(c["name"], c["arguments"]) for _, c in sorted(self.calls.items())]


async def stream_all(client: Any, **kwargs: Any) -> Streamed:
    out = Streamed()
    stream = await client.chat.completions.create(stream=True, **kwargs)
    async for chunk in stream:
        out.add(chunk)
    return out


async def stream_until_error(client: Any, **kwargs: Any) -> tuple[Streamed, openai.APIError]:
    out = Streamed()
    stream = await client.chat.completions.create(stream=True, **kwargs)
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            out.add(chunk)
    return out, info.value


def anthropic_stream_arguments(name: str) -> list[str]:
    """The recorded stream's partial_json fragments joined per tool_use block, byte for byte."""
    joined: dict[int, str] = {}
    for line in (FIXTURES / "anthropic" / name).read_text().splitlines():
        if line.startswith("data: "):
            obj = json.loads(line[6:])
            delta = obj.get("delta") or {}
            if delta.get("type") == "input_json_delta":
                joined[obj["index"]] = joined.get(obj["index"], "") + delta["partial_json"]
    return [joined[i] for i in sorted(joined)]


# --- plain text ---------------------------------------------------------------------------------------------

EXPECTED_TEXT = {
    CLAUDE: ("Hi! My name is Claude.", "claude-sonnet-4-5-20250929"),
    GEMINI: ("AI learns patterns from data to make predictions.", "gemini-2.5-flash"),
}


@BOTH
async def test_non_stream_text_is_an_openai_completion_with_the_served_version_as_model(
    client, fake_upstream, base
):
    resp = await client.chat.completions.with_raw_response.create(model=base, messages=HELLO)
    out = resp.parse()
    text, served = EXPECTED_TEXT[base]
    assert out.object == "chat.completion"
    assert out.choices[0].message.role == "assistant"
    assert out.choices[0].message.content == text
    assert out.choices[0].finish_reason == "stop"
    assert out.model == served  # the provider's version string, not the alias the client asked for
    assert resp.headers["x-nextmodel-provider"] == PROVIDER[base]
    assert resp.headers["x-nextmodel-receipt-id"].startswith("rcpt_")
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens > 0
    sent = sent_upstream(fake_upstream, base)
    assert len(sent) == 1 and sent[0]["contents" if base == GEMINI else "messages"][0]["role"] == "user"


async def test_anthropic_gets_the_provider_key_and_never_the_client_key(client, fake_upstream):
    await client.chat.completions.create(model=CLAUDE, messages=HELLO)
    headers = {k.lower(): v for k, v in fake_upstream.app[ANTHROPIC_REQUESTS][-1][0].items()}
    assert headers["x-api-key"] == "sk-upstream-secret"
    assert headers["anthropic-version"] == "2023-06-01"
    assert "sk-client-not-forwarded" not in json.dumps(headers)


async def test_anthropic_beta_header_from_the_client_reaches_anthropic(client, fake_upstream):
    await client.chat.completions.create(
        model=CLAUDE, messages=HELLO, extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"}
    )
    headers = {k.lower(): v for k, v in fake_upstream.app[ANTHROPIC_REQUESTS][-1][0].items()}
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31"


async def test_gemini_gets_the_provider_key_and_never_the_client_key(client, fake_upstream):
    await client.chat.completions.create(model=GEMINI, messages=HELLO, stream=True)
    headers, query, model, _ = fake_upstream.app[GEMINI_REQUESTS][-1]
    headers = {k.lower(): v for k, v in headers.items()}
    assert headers["x-goog-api-key"] == "sk-upstream-secret"
    assert query == {"alt": "sse"} and model == GEMINI
    assert "sk-client-not-forwarded" not in json.dumps(headers)


@BOTH
async def test_stream_text_accumulates_to_the_non_stream_text(client, base):
    whole = await client.chat.completions.create(model=base + "-same", messages=HELLO)
    streamed = await stream_all(client, model=base + "-same", messages=HELLO)
    assert streamed.text == whole.choices[0].message.content == EXPECTED_TEXT[base][0]
    assert sum(1 for c in streamed.chunks if c.choices and c.choices[0].delta.content) > 2  # really streamed
    assert streamed.finish == whole.choices[0].finish_reason == "stop"
    assert {c.model for c in streamed.chunks} == {whole.model}
    assert streamed.chunks[0].choices[0].delta.role == "assistant"


@pytest.mark.parametrize(
    ("model", "text"),
    [(CLAUDE, "Hello!"), (GEMINI, "AI, or artificial intelligence, learns patterns from data.")],
)
async def test_recorded_text_stream_arrives_whole_and_ends_with_stop(client, model, text):
    streamed = await stream_all(client, model=model, messages=HELLO)
    assert streamed.text == text
    assert streamed.finish == "stop"
    assert streamed.usage_chunks == []


# --- tools --------------------------------------------------------------------------------------------------


@BOTH
async def test_stream_tool_calls_and_usage_match_the_non_stream_answer(client, base):
    model = base + "-same-tools"
    whole = await client.chat.completions.create(model=model, messages=ASK, tools=TOOLS)
    streamed = await stream_all(
        client, model=model, messages=ASK, tools=TOOLS, stream_options={"include_usage": True}
    )
    msg = whole.choices[0].message
    assert streamed.named_calls() == [(c.function.name, c.function.arguments) for c in msg.tool_calls]
    assert len(msg.tool_calls) == 2
    assert streamed.text == (msg.content or "")
    assert streamed.finish == whole.choices[0].finish_reason == "tool_calls"
    assert [c.choices for c in streamed.usage_chunks] == [[]]
    assert streamed.usage_chunks[0].usage.model_dump() == whole.usage.model_dump()
    if base == CLAUDE:  # Anthropic ids are the provider's own and must match both ways
        assert [c["id"] for _, c in sorted(streamed.calls.items())] == [c.id for c in msg.tool_calls]


async def test_anthropic_non_stream_text_and_two_tool_calls_in_one_answer(client):
    out = await client.chat.completions.create(model=CLAUDE + "-tools", messages=ASK, tools=TOOLS)
    msg = out.choices[0].message
    assert msg.content == "I'll check the current weather in San Francisco for you."
    assert [(c.id, c.type, c.function.name, json.loads(c.function.arguments)) for c in msg.tool_calls] == [
        (
            "toolu_01A09q90qw90lq917835lq9",
            "function",
            "get_weather",
            {"location": "San Francisco, CA", "unit": "celsius"},
        ),
        ("toolu_01B19q90qw90lq917835lq0", "function", "get_time", {"timezone": "America/Los_Angeles"}),
    ]
    assert out.choices[0].finish_reason == "tool_calls"


async def test_anthropic_stream_keeps_every_tool_name_and_argument_byte(client):
    streamed = await stream_all(client, model=CLAUDE + "-tools", messages=ASK, tools=TOOLS)
    assert streamed.text == "Okay, let's check the weather for San Francisco, CA:"
    names = [name for name, _ in streamed.named_calls()]
    assert names == ["get_weather", "get_time"]
    assert [args for _, args in streamed.named_calls()] == anthropic_stream_arguments("stream_tools.sse")
    assert json.loads(streamed.calls[1]["arguments"])["label"] == 'café "open"'
    assert [c["id"] for _, c in sorted(streamed.calls.items())] == [
        "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
        "toolu_01D7FLrfh4GYq7yT1ULFeyMV",
    ]
    assert streamed.finish == "tool_calls"


async def test_gemini_non_stream_two_parallel_calls_keep_names_and_arguments(client):
    out = await client.chat.completions.create(model=GEMINI + "-tools", messages=ASK, tools=TOOLS)
    calls = out.choices[0].message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_current_temperature", {"location": "Paris"}),
        ("get_current_temperature", {"location": "London", "unit": "celsius"}),
    ]
    assert len({c.id for c in calls}) == 2  # Gemini gives no ids; ours must still tell the calls apart
    assert out.choices[0].finish_reason == "tool_calls"


async def test_gemini_stream_keeps_thoughts_text_and_every_tool_argument(client):
    streamed = await stream_all(client, model=GEMINI + "-tools", messages=ASK, tools=TOOLS)
    assert streamed.reasoning.startswith("**Checking two cities**")
    assert streamed.text == "Let me look both up."
    assert [(name, json.loads(args)) for name, args in streamed.named_calls()] == [
        ("get_current_temperature", {"location": "Paris", "note": 'café "open"'}),
        ("get_local_time", {"city": "London"}),
    ]
    assert streamed.finish == "tool_calls"


# --- usage --------------------------------------------------------------------------------------------------

# (prompt = fresh input + cache reads + cache writes, cache reads, cache writes, completion) of the streams.
STREAM_USAGE = {CLAUDE: (472 + 2048 + 1024, 2048, 1024, 89), GEMINI: (84, 64, None, 36 + 96)}


@BOTH
async def test_no_usage_chunk_reaches_a_client_that_did_not_ask(client, base):
    streamed = await stream_all(client, model=base + "-tools", messages=ASK, tools=TOOLS)
    assert streamed.usage_chunks == []
    assert all(c.choices for c in streamed.chunks)
    assert streamed.finish == "tool_calls"


@BOTH
async def test_usage_chunk_counts_cache_reads_and_writes_inside_prompt_tokens(client, fake_upstream, base):
    streamed = await stream_all(
        client, model=base + "-tools", messages=ASK, tools=TOOLS, stream_options={"include_usage": True}
    )
    assert "stream_options" not in sent_upstream(fake_upstream, base)[-1]  # not a field these APIs know
    assert len(streamed.usage_chunks) == 1 and streamed.chunks[-1] is streamed.usage_chunks[0]
    usage = streamed.usage_chunks[0].usage
    prompt, reads, writes, completion = STREAM_USAGE[base]
    assert usage.prompt_tokens == prompt
    assert usage.prompt_tokens_details.cached_tokens == reads
    assert getattr(usage.prompt_tokens_details, "cache_write_tokens", None) == writes
    assert usage.completion_tokens == completion
    assert usage.total_tokens == prompt + completion


async def test_anthropic_non_stream_usage_names_cache_reads_and_writes(client):
    out = await client.chat.completions.create(model=CLAUDE + "-tools", messages=ASK)
    assert out.usage.prompt_tokens == 50 + 100000 + 248
    assert out.usage.prompt_tokens_details.cached_tokens == 100000
    # This SDK version declares prompt_tokens_details.cache_write_tokens; older ones keep it as an extra.
    assert getattr(out.usage.prompt_tokens_details, "cache_write_tokens", None) == 248
    assert out.usage.completion_tokens == 503


async def test_gemini_thoughts_are_reasoning_tokens_inside_completion_tokens(client):
    out = await client.chat.completions.create(model=GEMINI, messages=HELLO)
    assert out.usage.prompt_tokens == 1200 and out.usage.prompt_tokens_details.cached_tokens == 1024
    assert out.usage.completion_tokens == 11 + 48
    assert out.usage.completion_tokens_details.reasoning_tokens == 48


# --- multi-turn tool loops ----------------------------------------------------------------------------------


async def echo_turn(client: Any, base: str, assistant: dict[str, Any], results: list[dict[str, Any]]) -> dict:
    """Send turn 2 to the echo model, which answers with the provider request it received."""
    echo = await client.chat.completions.create(
        model=base + "-echo", messages=[*ASK, assistant, *results], tools=TOOLS
    )
    return json.loads(echo.choices[0].message.content)


def results_for(ids: list[str]) -> list[dict[str, Any]]:
    return [
        {"role": "tool", "tool_call_id": cid, "content": orjson.dumps({"temp_c": 20 + i}).decode()}
        for i, cid in enumerate(ids)
    ]


async def test_anthropic_tool_results_go_back_paired_with_their_tool_use_ids(client):
    first = await client.chat.completions.create(model=CLAUDE + "-tools", messages=ASK, tools=TOOLS)
    msg = first.choices[0].message
    sent = await echo_turn(
        client, CLAUDE, msg.model_dump(exclude_none=True), results_for([c.id for c in msg.tool_calls])
    )
    assistant, results = sent["messages"][1], sent["messages"][2]
    assert assistant["role"] == "assistant" and results["role"] == "user"
    assert assistant["content"][0] == {"type": "text", "text": msg.content}
    assert [(b["id"], b["name"], b["input"]) for b in assistant["content"][1:]] == [
        (c.id, c.function.name, json.loads(c.function.arguments)) for c in msg.tool_calls
    ]
    assert [(b["type"], b["tool_use_id"], json.loads(b["content"])) for b in results["content"]] == [
        ("tool_result", msg.tool_calls[0].id, {"temp_c": 20}),
        ("tool_result", msg.tool_calls[1].id, {"temp_c": 21}),
    ]


async def test_gemini_thought_signature_round_trips_from_a_non_stream_answer(client):
    first = await client.chat.completions.create(model=GEMINI + "-tools", messages=ASK, tools=TOOLS)
    calls = first.choices[0].message.tool_calls
    assert calls[0].model_extra["extra_content"] == {"google": {"thought_signature": GEMINI_SIGNATURE}}
    sent = await echo_turn(
        client,
        GEMINI,
        first.choices[0].message.model_dump(exclude_none=True),
        results_for([c.id for c in calls]),
    )
    model_turn, results_turn = sent["contents"][1], sent["contents"][2]
    assert model_turn["role"] == "model"
    assert model_turn["parts"][0]["thoughtSignature"] == GEMINI_SIGNATURE
    assert "thoughtSignature" not in model_turn["parts"][1]  # only the first parallel call carries one
    assert [p["functionResponse"] for p in results_turn["parts"]] == [
        {"name": "get_current_temperature", "response": {"temp_c": 20}},
        {"name": "get_current_temperature", "response": {"temp_c": 21}},
    ]


async def test_gemini_thought_signature_round_trips_from_a_stream(client):
    streamed = await stream_all(client, model=GEMINI + "-tools", messages=ASK, tools=TOOLS)
    calls = [c for _, c in sorted(streamed.calls.items())]
    assert calls[0]["extra"]["extra_content"] == {"google": {"thought_signature": GEMINI_SIGNATURE}}
    assistant = {
        "role": "assistant",
        "content": streamed.text,
        "tool_calls": [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
                **c["extra"],
            }
            for c in calls
        ],
    }
    sent = await echo_turn(client, GEMINI, assistant, results_for([c["id"] for c in calls]))
    parts = sent["contents"][1]["parts"]
    assert parts[0] == {"text": "Let me look both up."}
    assert parts[1] == {
        "functionCall": {
            "name": "get_current_temperature",
            "args": {"location": "Paris", "note": 'café "open"'},
        },
        "thoughtSignature": GEMINI_SIGNATURE,
    }
    assert [p["functionResponse"]["name"] for p in sent["contents"][2]["parts"]] == [
        "get_current_temperature",
        "get_local_time",
    ]


# --- response_format ----------------------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


async def test_anthropic_json_response_format_becomes_a_system_instruction(client):
    out = await client.chat.completions.create(
        model=CLAUDE + "-echo", messages=HELLO, response_format={"type": "json_object"}
    )
    sent = json.loads(out.choices[0].message.content)  # the echoed request is itself the JSON answer
    assert any("valid JSON object" in block["text"] for block in sent["system"])
    schema = await client.chat.completions.create(
        model=CLAUDE + "-echo",
        messages=HELLO,
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}},
    )
    system = json.loads(schema.choices[0].message.content)["system"]
    assert any(orjson.dumps(SCHEMA).decode() in block["text"] for block in system)


async def test_gemini_json_response_format_sets_the_response_mime_type_and_schema(client):
    out = await client.chat.completions.create(
        model=GEMINI + "-echo", messages=HELLO, response_format={"type": "json_object"}
    )
    assert json.loads(out.choices[0].message.content)["generationConfig"] == {
        "responseMimeType": "application/json"
    }
    schema = await client.chat.completions.create(
        model=GEMINI + "-echo",
        messages=HELLO,
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}},
    )
    config = json.loads(schema.choices[0].message.content)["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA}


# --- errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "exc_type", "status", "type_", "message"),
    [
        (CLAUDE + "-error", openai.BadRequestError, 400, "invalid_request_error", "roles must alternate"),
        (CLAUDE + "-overloaded", openai.InternalServerError, 503, "api_error", "Overloaded"),
        (GEMINI + "-error", openai.BadRequestError, 400, "invalid_request_error", "API key not valid"),
    ],
)
async def test_upstream_error_reaches_the_sdk_as_an_openai_error_with_its_status(
    client, fake_upstream, model, exc_type, status, type_, message
):
    with pytest.raises(exc_type) as info:
        await client.chat.completions.create(model=model, messages=HELLO)
    err = info.value
    assert err.status_code == status
    assert message in err.message
    assert isinstance(err.body, dict) and set(err.body) >= {"message", "type", "param", "code"}
    assert err.body["type"] == type_
    assert err.response.headers["x-nextmodel-provider"] == PROVIDER[base_of(model)]
    assert len(sent_upstream(fake_upstream, base_of(model))) == 1  # max_retries: 0, so exactly one attempt


@pytest.mark.parametrize(
    ("model", "param", "value"),
    [
        (CLAUDE, "n", 2),
        (CLAUDE, "seed", 7),
        (CLAUDE, "logprobs", True),
        (GEMINI, "n", 3),
        (GEMINI, "logit_bias", {"50256": -100}),
        (GEMINI, "logprobs", True),
    ],
)
async def test_unsupported_parameter_is_400_naming_it_and_nothing_goes_upstream(
    client, fake_upstream, model, param, value
):
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model=model, messages=HELLO, extra_body={param: value})
    assert info.value.param == param and info.value.code == "unsupported_parameter"
    assert param in info.value.message
    assert sent_upstream(fake_upstream, model) == []


@pytest.mark.parametrize(
    ("model", "before", "message"),
    [
        (CLAUDE + "-midstream-error", "Once upon", "Overloaded"),
        (GEMINI + "-midstream-error", "AI, or artificial intelligence,", "overloaded"),
    ],
)
async def test_midstream_error_reaches_the_sdk_as_an_error_after_the_text_so_far(
    client, model, before, message
):
    streamed, err = await stream_until_error(client, model=model, messages=HELLO)
    assert streamed.text == before
    assert streamed.finish is None  # never dressed up as a normal end
    assert message in err.message
    assert isinstance(err.body, dict) and err.body["message"] == err.message


async def test_gemini_malformed_function_call_is_an_error_not_an_empty_stop(client):
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model=GEMINI + "-malformed", messages=ASK, tools=TOOLS)
    assert info.value.status_code == 502
    assert "MALFORMED_FUNCTION_CALL" in info.value.message


async def test_gemini_malformed_function_call_in_a_stream_is_an_error_event(client):
    streamed, err = await stream_until_error(client, model=GEMINI + "-malformed", messages=ASK, tools=TOOLS)
    assert streamed.text == "Checking"
    assert streamed.finish is None and streamed.calls == {}
    assert "MALFORMED_FUNCTION_CALL" in err.message


@pytest.mark.parametrize(
    ("model", "exc_type", "status"),
    [
        (CLAUDE + "-error", openai.BadRequestError, 400),
        (CLAUDE + "-overloaded", openai.InternalServerError, 503),
        (GEMINI + "-error", openai.BadRequestError, 400),
    ],
)
async def test_stream_request_refused_upstream_is_an_error_response_not_a_stream(
    client, model, exc_type, status
):
    with pytest.raises(exc_type) as info:
        await client.chat.completions.create(model=model, messages=HELLO, stream=True)
    assert info.value.status_code == status
    assert info.value.response.headers["content-type"].startswith("application/json")


async def test_stream_response_carries_the_proxy_headers(client):
    async with client.chat.completions.with_streaming_response.create(
        model=GEMINI, messages=HELLO, stream=True
    ) as resp:
        assert resp.headers["x-nextmodel-provider"] == "gemini"
        assert resp.headers["content-type"].startswith("text/event-stream")
        body = b"".join([chunk async for chunk in resp.iter_bytes()])
    assert body.endswith(b"data: [DONE]\n\n")


async def test_route_falls_back_from_an_overloaded_claude_to_gemini(write_config, start_proxy, fake_upstream):
    route = "  claude-then-gemini: {strategy: fallback, candidates: [claude-sonnet-4-5-overloaded, gemini-2.5-flash]}\n"
    proxy = await start_proxy(write_config(route))
    async with openai.AsyncOpenAI(base_url=proxy.base, api_key="sk-client", max_retries=0, timeout=20) as sdk:
        resp = await sdk.chat.completions.with_raw_response.create(model="claude-then-gemini", messages=HELLO)
        streamed = await stream_all(sdk, model="claude-then-gemini", messages=HELLO)
    assert resp.headers["x-nextmodel-provider"] == "gemini"
    assert resp.parse().choices[0].message.content == EXPECTED_TEXT[GEMINI][0]
    assert streamed.text == "AI, or artificial intelligence, learns patterns from data."
    assert len(sent_upstream(fake_upstream, CLAUDE)) == 2  # one overloaded attempt per request, then Gemini


@pytest.mark.parametrize(
    ("model", "before"),
    [(CLAUDE + "-truncated", "Hello!"), (GEMINI + "-truncated", "AI, or artificial intelligence,")],
)
async def test_stream_closed_before_it_finished_reaches_the_sdk_as_an_error(client, model, before):
    stream = await client.chat.completions.create(model=model, messages=HELLO, stream=True)
    streamed = Streamed()
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            streamed.add(chunk)
    assert streamed.text == before and streamed.finish is None
