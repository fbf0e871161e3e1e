"""The demo provider honours the request's contract: schemas, tools, limits, logprobs, embeddings encodings."""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Literal

import jsonschema
import openai
import pytest
from live_proxy import live_proxy_fixture
from pydantic import BaseModel, Field

from nextmodel_proxy.estimate import estimate_tokens
from nextmodel_proxy.upstream.demo.schema import Prompt, from_pattern, instance

ASK = [{"role": "user", "content": "What is the weather in Paris for John Smith, aged 30?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit", "days"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a timezone",
        "parameters": {
            "type": "object",
            "properties": {"tz": {"type": "string", "pattern": "^[A-Z][a-z]+/[A-Z][a-z]+$"}},
        },
    },
}


class Address(BaseModel):
    street: str
    postcode: str = Field(pattern=r"^\d{5}(-\d{4})?$")


class Person(BaseModel):
    name: str
    age: int = Field(ge=0, le=150)
    email: str | None = None
    role: Literal["admin", "user"]
    tags: list[str] = Field(min_length=1, max_length=3)
    home: Address
    friends: list[Person] = []
    score: float = Field(gt=0, lt=1)


SCHEMAS = [
    Person.model_json_schema(),
    WEATHER["function"]["parameters"],
    CLOCK["function"]["parameters"],
    {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 2, "uniqueItems": True},
    {"type": ["string", "null"], "minLength": 12, "maxLength": 14},
    {"type": "integer", "exclusiveMinimum": 10, "exclusiveMaximum": 13, "multipleOf": 2},
    {"type": "number", "minimum": -1.5, "maximum": -1.25},
    {
        "allOf": [
            {"properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"const": 3}}},
        ]
    },
    {
        "oneOf": [
            {"type": "object", "properties": {"kind": {"const": "x"}}, "required": ["kind"]},
            {"type": "null"},
        ]
    },
    {"type": "object", "minProperties": 3, "additionalProperties": {"type": "boolean"}},
    {
        "type": "array",
        "prefixItems": [{"type": "string", "format": "date"}, {"type": "string", "format": "uuid"}],
    },
    {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                "required": ["kids"],
            }
        },
        "$ref": "#/$defs/node",
    },
    {"type": "string", "format": "date-time"},
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
def test_generated_values_validate_against_their_schema(schema):
    for seed in (0, 1, 2):
        jsonschema.validate(instance(schema, Prompt("Book 2 rooms in Rome for Ada Lovelace", seed)), schema)


def test_generated_values_borrow_the_users_words_where_a_name_suggests_it():
    value = instance(Person.model_json_schema(), Prompt("Extract: John Smith is 30 and lives in Paris.", 0))
    assert (value["name"], value["age"]) == ("John Smith", 30)
    args = instance(WEATHER["function"]["parameters"], Prompt(ASK[0]["content"], 0))
    assert args["city"] == "Paris"


@pytest.mark.parametrize(
    "pattern", [r"^[A-Z]{2}-\d{3}$", r"[^a-zA-Z0-9]+", r"(foo|bar)baz", r"^\w+@\w+\.com$"]
)
def test_patterns_get_matching_strings(pattern):
    import re

    assert re.search(pattern, from_pattern(pattern))


live = live_proxy_fixture("demo")


@pytest.fixture(scope="module")
def oa(live):
    with openai.OpenAI(base_url=live.base, api_key="sk-demo", max_retries=0, timeout=20) as client:
        yield client


def chat(oa, **kw):
    return oa.chat.completions.create(model="demo-chat", messages=kw.pop("messages", ASK), **kw)


def test_parse_with_a_pydantic_model_succeeds(oa):
    done = oa.chat.completions.parse(model="demo-chat", messages=ASK, response_format=Person)
    person = done.choices[0].message.parsed
    assert isinstance(person, Person) and isinstance(person.home, Address)
    assert done.usage.completion_tokens == estimate_tokens(done.choices[0].message.content)


def test_json_object_mode_returns_a_json_object(oa):
    import json

    reply = chat(oa, response_format={"type": "json_object"})
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


def test_tool_arguments_validate_and_the_relevant_tool_is_chosen(oa):
    import json

    reply = chat(oa, tools=[CLOCK, WEATHER])
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    jsonschema.validate(args, WEATHER["function"]["parameters"])
    named = chat(
        oa, tools=[CLOCK, WEATHER], tool_choice={"type": "function", "function": {"name": "get_time"}}
    )
    clock_args = json.loads(named.choices[0].message.tool_calls[0].function.arguments)
    jsonschema.validate(clock_args, CLOCK["function"]["parameters"])
    none = chat(oa, tools=[CLOCK, WEATHER], tool_choice="none")
    assert none.choices[0].message.tool_calls is None and none.choices[0].finish_reason == "stop"


def test_after_a_tool_result_the_answer_is_final_unless_a_tool_is_required(oa):
    first = chat(oa, tools=[WEATHER]).choices[0].message
    call = first.tool_calls[0]
    turn = [
        *ASK,
        first.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C, sunny"},
    ]
    final = chat(oa, messages=turn, tools=[WEATHER])
    assert final.choices[0].finish_reason == "stop"
    assert "get_weather returned 18C, sunny" in final.choices[0].message.content
    again = chat(oa, messages=turn, tools=[WEATHER], tool_choice="required")
    assert again.choices[0].finish_reason == "tool_calls"


def test_stream_of_a_tool_call_reassembles_to_the_same_call(oa):
    plain = chat(oa, tools=[WEATHER]).choices[0].message.tool_calls[0]
    parts, name, ident = [], None, None
    for chunk in chat(oa, tools=[WEATHER], stream=True):
        for tc in chunk.choices[0].delta.tool_calls or []:
            name = tc.function.name or name
            ident = tc.id or ident
            parts.append(tc.function.arguments or "")
    assert (ident, name, "".join(parts)) == (plain.id, plain.function.name, plain.function.arguments)


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_token_limit_cuts_with_finish_reason_length(oa, field):
    reply = chat(oa, **{field: 3})
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 3
    assert reply.choices[0].message.content == chat(oa).choices[0].message.content[:12]


def test_usage_matches_the_text_and_the_estimator(oa):
    reply = chat(oa, n=3)
    texts = [c.message.content for c in reply.choices]
    assert len(set(texts)) == 3
    assert reply.usage.completion_tokens == sum(estimate_tokens(t) for t in texts)
    assert reply.usage.prompt_tokens == estimate_tokens(ASK)


def test_n_choices_stream_like_they_answer(oa):
    plain = chat(oa, n=2, seed=5)
    texts = {0: "", 1: ""}
    finishes = {}
    for chunk in chat(oa, n=2, seed=5, stream=True, stream_options={"include_usage": True}):
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
        if chunk.usage:
            assert chunk.usage.completion_tokens == plain.usage.completion_tokens
    assert [texts[0], texts[1]] == [c.message.content for c in plain.choices]
    assert finishes == {0: "stop", 1: "stop"}


def test_logprobs_cover_exactly_the_returned_text(oa):
    reply = chat(oa, logprobs=True, top_logprobs=3)
    entries = reply.choices[0].logprobs.content
    assert "".join(e.token for e in entries) == reply.choices[0].message.content
    assert len(entries) == reply.usage.completion_tokens
    for e in entries:
        assert len(e.top_logprobs) == 3 and e.top_logprobs[0].token == e.token
        assert all(alt.logprob < e.logprob <= 0 for alt in e.top_logprobs[1:])
        assert bytes(e.bytes).decode() == e.token


def test_stop_and_seed(oa):
    full = chat(oa).choices[0].message.content
    cut = chat(oa, stop=["NextModel"])
    assert cut.choices[0].message.content == full[: full.index("NextModel")]
    assert cut.choices[0].finish_reason == "stop"
    assert chat(oa, seed=1).choices[0].message.content == chat(oa, seed=1).choices[0].message.content
    assert chat(oa, seed=1).choices[0].message.content != chat(oa, seed=2).choices[0].message.content


@pytest.mark.parametrize(
    ("kw", "param"),
    [
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
        ),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
def test_requests_a_real_model_refuses_get_400_naming_the_parameter(oa, kw, param):
    with pytest.raises(openai.BadRequestError) as err:
        chat(oa, **kw)
    assert err.value.status_code == 400 and err.value.body["param"] == param


def test_embeddings_honour_dimensions_and_base64(oa):
    floats = oa.embeddings.create(
        model="demo-embed", input=["red apples", "green apples", "tax law"], dimensions=64
    )
    vectors = [d.embedding for d in floats.data]
    assert [len(v) for v in vectors] == [64, 64, 64]
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])
    assert floats.usage.prompt_tokens == sum(
        estimate_tokens(t) for t in ["red apples", "green apples", "tax law"]
    )
    raw = oa.embeddings.with_raw_response.create(
        model="demo-embed", input="red apples", dimensions=64, encoding_format="base64"
    ).http_response.json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert list(struct.unpack("<64f", packed)) == vectors[0]
    assert len(oa.embeddings.create(model="demo-embed", input="x").data[0].embedding) == 1536


def test_embeddings_bad_encoding_or_dimensions_get_400(oa):
    for kw, param in (({"dimensions": 0}, "dimensions"), ({"encoding_format": "int8"}, "encoding_format")):
        with pytest.raises(openai.BadRequestError) as err:
            oa.embeddings.create(model="demo-embed", input="x", **kw)
        assert err.value.body["param"] == param


ABSURD = [
    {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
    {"$defs": {"n": {"type": "object", "properties": {"l": {"$ref": "#/$defs/n"}, "r": {"$ref": "#/$defs/n"}},
                     "required": ["l", "r"]}}, "$ref": "#/$defs/n"},
    {"type": "array", "minItems": 10**9, "items": {"type": "string", "minLength": 10**9}},
    {"type": "string", "pattern": "((a{1000}){1000}){1000}"},
]  # fmt: skip


@pytest.mark.parametrize("schema", ABSURD, ids=range(len(ABSURD)))
def test_unsatisfiable_or_huge_schemas_still_get_a_small_answer_quickly(schema):
    assert len(json.dumps(instance(schema, Prompt("x", 0)))) < 10_000_000


def test_float_multiple_of_gets_a_value_strict_validators_accept():
    schema = {"type": "number", "multipleOf": 0.01, "minimum": 0.5, "maximum": 9}
    for seed in range(5):
        jsonschema.validate(instance(schema, Prompt("", seed)), schema)


def test_a_schema_the_demo_cannot_satisfy_is_a_clean_answer_not_a_500(oa):
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/loop"}}, "required": ["a"],
              "$defs": {"loop": {"$ref": "#/$defs/loop"}}}  # fmt: skip
    reply = chat(oa, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert json.loads(reply.choices[0].message.content) == {"a": None}


def test_demo_answers_are_billed_from_the_usage_they_report(oa, live):
    from decimal import Decimal

    raw = oa.chat.completions.with_raw_response.create(model="demo-chat", messages=ASK, n=2)
    usage = raw.parse().usage
    # demo-chat's price in the test config: $0.10 input and $0.40 output per 1M tokens.
    expected = (
        Decimal(usage.prompt_tokens) * Decimal("0.10") + Decimal(usage.completion_tokens) * Decimal("0.40")
    ) / 10**6
    assert Decimal(raw.headers["x-nextmodel-cost-usd"]) == expected
    assert raw.headers["x-nextmodel-usage-source"] == "upstream"
