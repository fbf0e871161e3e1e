"""Cache key: what changes it, what does not, and the cacheability policy."""

from __future__ import annotations

import copy

import orjson
import pytest

from nextmodel_proxy.cache.key import cache_key, canonical_request, decide, explain, scope_for
from nextmodel_proxy.config import CacheConfig
from nextmodel_proxy.errors import ProxyError

TARGET = {"scope": "project:web", "provider": "openai", "upstream_model": "gpt-4o-mini", "endpoint": "chat"}

BODY = {
    "model": "fast",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "temperature": 0,
    "max_tokens": 50,
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "add",
                "parameters": {
                    "type": "object",
                    "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                },
            },
        }
    ],
    "tool_choice": "auto",
}


def key_of(body, **target):
    return cache_key(canonical_request(body, **{**TARGET, **target}))


def changed(path, value):
    body = copy.deepcopy(BODY)
    node = body
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return body


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("messages", 1, "content"), "What is 2+3?"),  # one character of one message
        (("messages", 1, "content"), "What is 2+2? "),  # trailing whitespace inside a string
        (("messages", 0, "content"), "you are terse."),  # case
        (("messages", 1, "role"), "assistant"),
        (("tools", 0, "function", "parameters", "properties", "a", "type"), "integer"),  # a tool's schema
        (("temperature",), 0.2),
        (("max_tokens",), 51),
        (("tool_choice",), "required"),
        (("seed",), 7),
        (("n",), 1),  # defaults are not filled in: explicit n=1 differs from absent
        (("response_format",), {"type": "json_object"}),
        (("some_future_field",), True),  # unknown fields count
        (("service_tier",), "flex"),
    ],
)
def test_any_output_affecting_change_changes_the_key(path, value):
    assert key_of(changed(path, value)) != key_of(BODY)


@pytest.mark.parametrize(
    "target",
    [
        {"scope": "project:other"},
        {"provider": "azure"},
        {"upstream_model": "gpt-4o"},
        {"endpoint": "embeddings"},
    ],
)
def test_scope_and_resolved_target_are_in_the_key(target):
    assert key_of(BODY, **target) != key_of(BODY)


def test_key_order_and_whitespace_do_not_change_the_key():
    text = orjson.dumps(BODY).decode()
    spaced = text.replace(",", " ,\n  ").replace(":", " : ")
    reordered = dict(reversed(list(orjson.loads(spaced).items())))
    reordered["tools"][0]["function"] = dict(reversed(list(reordered["tools"][0]["function"].items())))
    assert key_of(reordered) == key_of(BODY)


def test_stream_and_delivery_fields_do_not_change_the_key():
    extra = {
        **BODY,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u-42",
        "metadata": {"run": "7"},
        "store": True,
        "safety_identifier": "s",
        "prompt_cache_key": "p",
    }
    assert key_of(extra) == key_of(BODY)


def test_model_alias_is_replaced_by_the_resolved_upstream_model():
    assert key_of({**BODY, "model": "another-alias"}) == key_of(BODY)


def test_integral_floats_equal_ints_but_other_numbers_and_bools_do_not():
    assert key_of({**BODY, "temperature": 0.0}) == key_of(BODY)
    assert key_of(changed(("tools", 0, "function", "parameters", "minimum"), 1.0)) == key_of(
        changed(("tools", 0, "function", "parameters", "minimum"), 1)
    )
    assert key_of({**BODY, "top_p": 1}) != key_of({**BODY, "top_p": True})
    assert key_of({**BODY, "top_p": 0.5}) != key_of({**BODY, "top_p": 0.50001})


def test_canonical_does_not_mutate_the_body():
    body = {**BODY, "temperature": 0.0}
    before = copy.deepcopy(body)
    canonical_request(body, **TARGET)
    assert body == before and isinstance(body["temperature"], float)


def test_explain_shows_canonical_fields_and_key():
    result = explain({**BODY, "stream": True, "user": "u"}, **TARGET)
    canonical = orjson.loads(result["canonical"])
    assert result["key"] == key_of(BODY)
    assert len(result["key"]) == 32
    assert result["excluded"] == ["model", "stream", "user"]
    assert canonical["provider"] == "openai" and canonical["upstream_model"] == "gpt-4o-mini"
    assert "stream" not in canonical["request"] and "model" not in canonical["request"]
    assert canonical["request"]["messages"][1]["content"] == "What is 2+2?"


def test_scope_for_never_shares_between_tenants_unless_global():
    assert scope_for("project", project="a", key_id="k1") == "project:a"
    assert scope_for("key", project="a", key_id="k1") == "key:k1"
    assert scope_for("key", project="a", key_id=None) == "project:a"
    assert scope_for("global", project="a", key_id="k1") == "global"


# --- policy ------------------------------------------------------------------------------------------

CFG = CacheConfig()


def test_temperature_zero_is_read_and_written():
    d = decide(BODY, None, CFG, None)
    assert (d.read, d.write, d.mode, d.reason) == (True, True, "normal", None)


def test_sampling_without_seed_is_bypassed_as_nondeterministic():
    d = decide({"messages": []}, None, CFG, None)
    assert (d.read, d.write, d.reason) == (False, False, "nondeterministic")
    assert decide({"messages": [], "temperature": 0.7}, None, CFG, None).reason == "nondeterministic"


def test_seed_makes_a_sampling_request_cacheable():
    assert decide({"messages": [], "temperature": 0.7, "seed": 1}, None, CFG, None).read


def test_policy_always_and_never_from_config_or_model():
    body = {"messages": [], "temperature": 0.9}
    assert decide(body, None, CacheConfig(policy="always"), None).read
    assert decide(body, None, CFG, "always").write
    assert decide(BODY, None, CacheConfig(policy="always"), "never").reason == "policy-never"


def test_n_greater_than_one_with_sampling_needs_allow_n_gt_1():
    body = {"messages": [], "temperature": 0.9, "seed": 3, "n": 3}
    assert decide(body, None, CacheConfig(policy="always"), None).reason == "n>1"
    assert decide(body, None, CacheConfig(allow_n_gt_1=True), None).read
    assert decide({**BODY, "n": 3}, None, CFG, None).read  # greedy n>1 is fine


def test_cache_disabled_is_reported():
    d = decide(BODY, "refresh", CacheConfig(enabled=False), None)
    assert (d.read, d.write, d.reason) == (False, False, "disabled")


def test_header_modes():
    skip = decide(BODY, "skip", CFG, None)
    assert (skip.read, skip.write, skip.reason) == (False, False, "skip")
    refresh = decide(BODY, " Refresh ", CFG, None)
    assert (refresh.read, refresh.write, refresh.mode) == (False, True, "refresh")
    only = decide(BODY, "only", CFG, None)
    assert (only.read, only.write, only.upstream_allowed) == (True, False, False)
    only_nondet = decide({"messages": []}, "only", CFG, None)
    assert not only_nondet.read and not only_nondet.upstream_allowed


def test_invalid_header_value_is_a_400():
    with pytest.raises(ProxyError) as info:
        decide(BODY, "sometimes", CFG, None)
    assert info.value.status == 400 and info.value.param == "x-nextmodel-cache"


def test_embeddings_are_deterministic():
    assert decide({"input": "hello"}, None, CFG, None, endpoint="embeddings").read
