"""Client matrix: langchain-openai's ChatOpenAI drives the running proxy (invoke, stream, bind_tools and an
agent turn, with_structured_output in both its json_schema and function_calling methods)."""

from __future__ import annotations

import pytest
from live_proxy import live_proxy_fixture
from pydantic import BaseModel

langchain_openai = pytest.importorskip(
    "langchain_openai", reason="pip install -e '.[test]' brings langchain-openai"
)
from langchain_core.messages import HumanMessage, ToolMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402

live = live_proxy_fixture("langchain")
ASK = "What is the weather in Paris today?"


class Forecast(BaseModel):
    """A weather forecast."""

    city: str
    temperature_c: float
    conditions: list[str]


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"18C and sunny in {city}"


@pytest.fixture(scope="module")
def llm(live):
    return langchain_openai.ChatOpenAI(
        model="demo-chat", base_url=live.base, api_key="sk-client", max_retries=0, timeout=20
    )


def test_invoke(llm, live):
    reply = llm.invoke(ASK)
    assert ASK in reply.content
    assert reply.usage_metadata["output_tokens"] == -(-len(reply.content) // 4)
    upstream = langchain_openai.ChatOpenAI(model="fake-basic", base_url=live.base, api_key="x", max_retries=0)
    assert upstream.invoke("hello there").content == "Echo: hello there"


def test_stream(llm):
    text = "".join(chunk.content for chunk in llm.stream(ASK))
    assert text == llm.invoke(ASK).content


def test_bind_tools_and_an_agent_turn(llm):
    bound = llm.bind_tools([get_weather])
    history = [HumanMessage(ASK)]
    first = bound.invoke(history)
    assert first.tool_calls[0]["name"] == "get_weather" and first.tool_calls[0]["args"] == {"city": "Paris"}
    call = first.tool_calls[0]
    history += [first, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    final = bound.invoke(history)
    assert not final.tool_calls and "18C and sunny in Paris" in final.content


def test_bind_tools_stream(llm):
    chunks = list(llm.bind_tools([get_weather], tool_choice="get_weather").stream(ASK))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert merged.tool_calls[0]["args"] == {"city": "Paris"}


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_with_structured_output(llm, method):
    forecast = llm.with_structured_output(Forecast, method=method).invoke(ASK)
    assert isinstance(forecast, Forecast) and forecast.city == "Paris"
