"""StreamTee on its own: what it learns from OpenAI stream events, and when an answer counts as complete."""

from __future__ import annotations

import orjson

from nextmodel_proxy.tee import StreamTee

DONE = b"data: [DONE]\n\n"


def event(obj: dict) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def chunk(index: int, content: str | None = None, finish: str | None = None, **extra) -> bytes:
    delta = {"content": content} if content is not None else {}
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    return event({"id": "chatcmpl-1", "model": "m", "choices": [choice], **extra})


def watch(*events: bytes, collect: bool = True) -> StreamTee:
    tee = StreamTee(collect=collect)
    for raw in events:
        tee.observe(raw)
    return tee


def test_one_choice_finished_and_done_is_complete():
    tee = watch(chunk(0, "Hel"), chunk(0, "lo"), chunk(0, finish="stop"), DONE)
    assert tee.complete and tee.finish_reasons == {0: "stop"}
    assert (tee.response_id, tee.model, tee.content_chars()) == ("chatcmpl-1", "m", 5)


def test_no_done_or_no_finish_reason_or_an_error_is_not_complete():
    assert not watch(chunk(0, "Hi"), chunk(0, finish="stop")).complete
    assert not watch(chunk(0, "Hi"), DONE).complete
    error = event({"error": {"message": "overloaded", "code": "server_error"}})
    tee = watch(chunk(0, "Hi"), chunk(0, finish="stop"), error, DONE)
    assert not tee.complete and tee.error["code"] == "server_error"


def test_two_choices_need_two_finish_reasons():
    # n=2: choice 1 finished, choice 0 was cut off. One finished choice is not a whole answer.
    tee = watch(chunk(0, "a"), chunk(1, "b"), chunk(1, finish="stop"), DONE)
    assert not tee.complete
    tee = watch(chunk(0, "a"), chunk(1, "b"), chunk(1, finish="stop"), chunk(0, finish="length"), DONE)
    assert tee.complete and tee.finish_reasons == {0: "length", 1: "stop"}


def test_a_second_tool_call_is_not_a_second_choice():
    call = {"index": 1, "id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    second_call = event({"id": "x", "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
    tee = watch(chunk(0, "a"), second_call, chunk(0, finish="tool_calls"), DONE)
    assert tee.complete and tee.choices_seen == set()


def test_usage_only_chunk_is_reported_and_usage_kept():
    tee = StreamTee(collect=False)
    assert tee.observe(chunk(0, "Hi")) is False
    usage = event({"id": "x", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
    assert tee.observe(usage) is True
    assert tee.usage == {"prompt_tokens": 3, "completion_tokens": 1} and tee.events == []


def test_service_tier_from_the_top_level_or_inside_usage():
    assert watch(chunk(0, finish="stop", service_tier="flex")).service_tier == "flex"
    inside = event({"id": "x", "choices": [], "usage": {"prompt_tokens": 1, "service_tier": "priority"}})
    assert watch(inside).service_tier == "priority"
