"""Issue 16: check_usage answers the everyday OpenAI usage object without building the cleaned copy. Its
answer must be the full sanitizer's for every input, trusted or not: compared here on generated objects."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from nextmodel_proxy import usage

_VALUES = st.sampled_from(
    [
        0,
        1,
        7,
        120,
        4096,
        usage.MAX_TOKEN_COUNT,
        usage.MAX_TOKEN_COUNT + 1,
        -1,
        True,
        False,
        5.0,
        5.5,
        "5",
        None,
    ]
) | st.integers(min_value=0, max_value=2000)


def _maybe(d: dict[str, Any], key: str, value: Any, present: bool) -> None:
    if present:
        d[key] = value


@st.composite
def usage_objects(draw: st.DrawFn) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        _maybe(raw, key, draw(_VALUES), draw(st.booleans()) or key != "total_tokens")
    for key in ("prompt_cache_hit_tokens", "prompt_cache_miss_tokens"):
        _maybe(raw, key, draw(_VALUES), draw(st.integers(0, 5)) == 0)
    for outer, inner in (
        (
            "prompt_tokens_details",
            ("cached_tokens", "cache_write_tokens", "cache_write_1h_tokens", "audio_tokens"),
        ),
        ("completion_tokens_details", ("reasoning_tokens", "accepted_prediction_tokens")),
    ):
        shape = draw(st.sampled_from(["absent", "null", "dict", "dict", "dict", "list", "text"]))
        if shape == "null":
            raw[outer] = None
        elif shape == "list":
            raw[outer] = [1]
        elif shape == "text":
            raw[outer] = "x"
        elif shape == "dict":
            raw[outer] = {k: draw(_VALUES) for k in inner if draw(st.booleans())}
    return raw


def _full(raw: dict[str, Any], completion_required: bool) -> usage.CheckedUsage:
    """The full sanitizer alone (what check_usage did for every object before the fast path)."""
    try:
        cleaned = usage._cleaned(raw, "openai", completion_required=completion_required)
    except usage._Untrusted as exc:
        return usage.CheckedUsage(None, f"upstream usage not trusted: {exc}")
    return usage.CheckedUsage(usage._openai(cleaned))


@settings(max_examples=1500, deadline=None)
@given(usage_objects(), st.booleans(), st.booleans())
def test_fast_path_answers_as_the_full_sanitizer(
    raw: dict[str, Any], completion_required: bool, wrapped: bool
) -> None:
    given_ = {"id": "x", "usage": raw} if wrapped else raw
    assert usage.check_usage(given_, "openai", completion_required=completion_required) == _full(
        raw, completion_required
    )
    assert usage.check_usage(given_, "deepseek", completion_required=completion_required) == _full(
        raw, completion_required
    )


def test_everyday_usage_is_trusted_with_its_details() -> None:
    raw = {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 120},
    }
    assert usage.check_usage(raw).usage == usage.Usage(1200, 300, cached_tokens=1024, reasoning_tokens=120)
    assert usage.check_usage({**raw, "completion_tokens": 2.0}).usage == usage.Usage(
        1200, 2, cached_tokens=1024, reasoning_tokens=2
    )
    assert usage.check_usage({"prompt_tokens": 5}, completion_required=False).usage == usage.Usage(5, 0)
    assert usage.check_usage({"prompt_tokens": 5}).usage is None
