"""Client matrix: the Anthropic Python SDK drives the running proxy with base_url set to it, as Claude Code does
with ANTHROPIC_BASE_URL: messages.create, messages.stream with a tool call and the turn after its result,
count_tokens; translated for the demo provider, passed through to the fake Anthropic upstream."""

from __future__ import annotations

import pytest
from live_proxy import live_proxy_fixture

anthropic = pytest.importorskip("anthropic", reason="pip install -e '.[test]' brings the anthropic SDK")

live = live_proxy_fixture("anthropic")
ASK = "What is the weather in Paris today?"
TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def client(live):
    # The SDK sends its own newest anthropic-version; the proxy passes it through as sent, and the fake upstream
    # (like an Anthropic that predates it) knows only 2023-06-01, so the client pins that, as clients may.
    with anthropic.Anthropic(
        base_url=live.root,
        api_key="sk-client",
        max_retries=0,
        timeout=20,
        default_headers={"anthropic-version": "2023-06-01"},
    ) as c:
        yield c


def test_messages_create_translated_and_passed_through(client):
    demo = client.messages.create(
        model="demo-chat", max_tokens=200, messages=[{"role": "user", "content": ASK}]
    )
    assert demo.stop_reason == "end_turn" and ASK in demo.content[0].text
    assert demo.usage.output_tokens == -(-len(demo.content[0].text) // 4)
    native = client.messages.create(
        model="claude-sonnet-4-5", max_tokens=200, messages=[{"role": "user", "content": "hi"}]
    )
    assert native.content[0].text == "Hi! My name is Claude."


def test_max_tokens_cut_is_reported_as_anthropic_does(client):
    cut = client.messages.create(model="demo-chat", max_tokens=3, messages=[{"role": "user", "content": ASK}])
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 3


def test_messages_stream_with_a_tool_call_then_the_final_answer(client):
    question = [{"role": "user", "content": ASK}]
    with client.messages.stream(model="demo-chat", max_tokens=200, messages=question, tools=[TOOL]) as stream:
        types = {event.type for event in stream}
        first = stream.get_final_message()
    assert {"message_start", "content_block_start", "input_json", "message_stop"} <= types
    use = first.content[-1]
    assert (first.stop_reason, use.name, use.input) == ("tool_use", "get_weather", {"city": "Paris"})
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "18C and sunny"}
    turn = [*question, {"role": "assistant", "content": first.content}, {"role": "user", "content": [result]}]
    with client.messages.stream(model="demo-chat", max_tokens=200, messages=turn, tools=[TOOL]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn" and "18C and sunny" in final.content[0].text


def test_stream_passed_through_to_anthropic(client):
    with client.messages.stream(
        model="claude-sonnet-4-5-tools",
        max_tokens=200,
        messages=[{"role": "user", "content": ASK}],
        tools=[TOOL],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and [b.type for b in final.content].count("tool_use") == 2


def test_count_tokens_estimate_and_passthrough(client):
    question = [{"role": "user", "content": ASK}]
    local = client.messages.count_tokens(model="demo-chat", messages=question, tools=[TOOL])
    assert local.input_tokens > 0
    native = client.messages.count_tokens(model="claude-sonnet-4-5", messages=question)
    assert native.input_tokens > 0
