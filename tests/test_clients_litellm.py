"""Client matrix: litellm as a client library, `completion` with api_base pointed at the proxy.

litellm fetches its model-cost map from the internet at import unless LITELLM_LOCAL_MODEL_COST_MAP is set;
the fixture sets it (and turns telemetry off) before the import, so the test never leaves loopback.
"""

from __future__ import annotations

import json
import os

import pytest
from live_proxy import live_proxy_fixture

live = live_proxy_fixture("litellm")
# litellm's own pydantic types warn about ReadOnly TypedDict items at first use; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
ASK = "What is the weather in Paris today?"
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def completion(live):
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    litellm = pytest.importorskip("litellm", reason="pip install -e '.[test]' brings litellm")
    litellm.telemetry = False

    def call(**kw):
        kw.setdefault("messages", [{"role": "user", "content": ASK}])
        return litellm.completion(api_base=live.base, api_key="sk-client", num_retries=0, timeout=20, **kw)

    return call


def test_completion_demo_and_upstream(completion):
    demo = completion(model="openai/demo-chat")
    assert ASK in demo.choices[0].message.content
    assert demo.usage.completion_tokens == -(-len(demo.choices[0].message.content) // 4)
    upstream = completion(model="openai/fake-basic", messages=[{"role": "user", "content": "hello there"}])
    assert upstream.choices[0].message.content == "Echo: hello there"


def test_completion_stream(completion):
    text = "".join(
        chunk.choices[0].delta.content or "" for chunk in completion(model="openai/demo-chat", stream=True)
    )
    assert ASK in text


def test_completion_tools(completion):
    reply = completion(model="openai/demo-chat", tools=[TOOL])
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}


def test_completion_json_schema(completion):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}  # fmt: skip
    reply = completion(
        model="openai/demo-chat",
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "place", "schema": schema, "strict": True},
        },
    )
    assert json.loads(reply.choices[0].message.content) == {"city": "Paris"}
