"""Client matrix: openai-python (the sync client, as most scripts use it) drives the running proxy.

Chat, stream, tools and `parse` against the demo provider and the fake OpenAI upstream, embeddings,
models.retrieve, and the Responses API (stream and non-stream, with a function call and its output) as the
proxy translates it for a chat-only upstream.
"""

from __future__ import annotations

import json

import openai
import pytest
from live_proxy import live_proxy_fixture
from pydantic import BaseModel

from nextmodel_proxy.estimate import estimate_tokens

live = live_proxy_fixture("openai-python")
ASK = "What is the weather in Paris today?"
CHAT_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
RESPONSES_TOOL = {"type": "function", "name": "get_weather", "strict": True, **{
    k: CHAT_TOOL["function"][k] for k in ("description", "parameters")
}}  # fmt: skip


class Forecast(BaseModel):
    city: str
    temperature_c: float
    conditions: list[str]


@pytest.fixture(scope="module")
def oa(live):
    with openai.OpenAI(base_url=live.base, api_key="sk-client", max_retries=0, timeout=20) as client:
        yield client


def user(text=ASK):
    return [{"role": "user", "content": text}]


def test_chat_to_the_demo_and_to_an_openai_upstream(oa):
    demo = oa.chat.completions.create(model="demo-chat", messages=user())
    assert ASK in demo.choices[0].message.content
    upstream = oa.chat.completions.create(model="fake-basic", messages=user("hello there"))
    assert upstream.choices[0].message.content == "Echo: hello there"


def test_stream_with_usage(oa):
    chunks = list(
        oa.chat.completions.create(
            model="demo-chat", messages=user(), stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert ASK in text and chunks[-1].usage.completion_tokens == estimate_tokens(text)


def test_tools_agent_loop_ends(oa):
    first = oa.chat.completions.create(model="demo-chat", messages=user(), tools=[CHAT_TOOL])
    msg = first.choices[0].message
    assert json.loads(msg.tool_calls[0].function.arguments) == {"city": "Paris"}
    tool_turn = {"role": "tool", "tool_call_id": msg.tool_calls[0].id, "content": "18C"}
    final = oa.chat.completions.create(
        model="demo-chat", messages=[*user(), msg.model_dump(exclude_none=True), tool_turn], tools=[CHAT_TOOL]
    )
    assert final.choices[0].finish_reason == "stop" and "18C" in final.choices[0].message.content


def test_tool_calls_from_an_openai_upstream_stream(oa):
    with oa.chat.completions.stream(model="fake-tools", messages=user(), tools=[CHAT_TOOL]) as stream:
        done = stream.get_final_completion()
    assert [c.function.name for c in done.choices[0].message.tool_calls] == ["get_weather", "get_time"]


def test_parse_with_a_pydantic_model(oa):
    done = oa.chat.completions.parse(model="demo-chat", messages=user(), response_format=Forecast)
    forecast = done.choices[0].message.parsed
    assert isinstance(forecast, Forecast) and forecast.city == "Paris"


def test_parse_stream_with_a_pydantic_model(oa):
    with oa.chat.completions.stream(model="demo-chat", messages=user(), response_format=Forecast) as stream:
        done = stream.get_final_completion()
    assert isinstance(done.choices[0].message.parsed, Forecast)


def test_embeddings_default_and_float_agree(oa):
    default = oa.embeddings.create(model="demo-embed", input="red apples", dimensions=32)  # SDK asks base64
    floats = oa.embeddings.create(
        model="demo-embed", input="red apples", dimensions=32, encoding_format="float"
    )
    assert len(default.data[0].embedding) == 32
    assert default.data[0].embedding == floats.data[0].embedding


def test_models_retrieve(oa):
    model = oa.models.retrieve("demo-chat")
    assert (model.id, model.object, model.owned_by) == ("demo-chat", "model", "demo")
    with pytest.raises(openai.NotFoundError):
        oa.models.retrieve("no-such-model")


def test_responses_non_stream_function_call_round_trip(oa):
    first = oa.responses.create(model="demo-chat", input=ASK, tools=[RESPONSES_TOOL])
    call = first.output[0]
    assert (call.type, call.name, json.loads(call.arguments)) == (
        "function_call",
        "get_weather",
        {"city": "Paris"},
    )
    final = oa.responses.create(
        model="demo-chat",
        tools=[RESPONSES_TOOL],
        input=[
            {"role": "user", "content": ASK},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"},
        ],
    )
    assert final.status == "completed" and "18C and sunny" in final.output_text


def test_responses_stream_function_call(oa):
    with oa.responses.stream(model="demo-chat", input=ASK, tools=[RESPONSES_TOOL]) as stream:
        types = [event.type for event in stream]
        done = stream.get_final_response()
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert "response.function_call_arguments.done" in types
    assert done.output[0].parsed_arguments == {"city": "Paris"}


def test_responses_stream_text(oa):
    events = list(oa.responses.create(model="demo-chat", input="hello", stream=True))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert "hello" in text and events[-1].response.output_text == text


def test_legacy_completions_with_suffix_stream_and_logprobs(oa):
    done = oa.completions.create(model="demo-chat", prompt="def fib(n):", suffix="return a", logprobs=2, n=2)
    assert [c.index for c in done.choices] == [0, 1] and done.choices[0].text != done.choices[1].text
    first = done.choices[0]
    assert first.finish_reason == "length" and len(first.logprobs.tokens) == 16  # the default max_tokens
    assert "".join(first.logprobs.tokens) == first.text and all(
        len(t) == 2 for t in first.logprobs.top_logprobs
    )
    assert done.usage.completion_tokens == 32 and done.usage.prompt_tokens == estimate_tokens("def fib(n):")
    whole = oa.completions.create(model="demo-chat", prompt="def fib(n):", suffix="return a", max_tokens=100)
    assert (
        whole.choices[0].finish_reason == "stop"
        and "def fib(n): and before: return a" in whole.choices[0].text
    )
    chunks = list(
        oa.completions.create(
            model="demo-chat", prompt="def fib(n):", suffix="return a", max_tokens=100, stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    with pytest.raises(openai.BadRequestError) as err:
        oa.completions.create(model="demo-chat", prompt="x", logprobs=9)
    assert err.value.body["param"] == "logprobs"
