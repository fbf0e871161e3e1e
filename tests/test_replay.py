"""Replays between stream and non-stream forms, and what may be stored."""

from __future__ import annotations

import orjson

from nextmodel_proxy.cache.replay import (
    completion_to_sse,
    decode_events,
    encode_events,
    is_complete_completion,
    is_complete_embeddings,
    is_complete_stream,
    replay,
    replay_stream,
    sse_to_completion,
)
from nextmodel_proxy.sse import DONE, data_event

HEAD = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "system_fingerprint": "fp_1",
}
USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": 7,
    "total_tokens": 19,
    "prompt_tokens_details": {"cached_tokens": 0},
}


def chunk(delta, index=0, finish=None, **extra):
    return data_event(
        {
            **HEAD,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **extra,
        }
    )


def usage_chunk():
    return data_event({**HEAD, "choices": [], "usage": USAGE})


TEXT_STREAM = [
    chunk({"role": "assistant", "content": "", "refusal": None}),
    chunk({"content": "Hel"}),
    chunk({"content": "lo, "}),
    chunk({"content": "world"}),
    chunk({}, finish="stop"),
    usage_chunk(),
    DONE,
]

ARGS_0 = '{"city": "Paris", "unit": "c\\u00b0"}'
ARGS_1 = '{"q": "a,b"}'
TOOL_STREAM = [
    chunk({"role": "assistant", "content": None}),
    chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "weather", "arguments": ""},
                }
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": ARGS_0[:7]}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": ARGS_0[7:]}}]}),
    chunk(
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "search", "arguments": ARGS_1[:3]},
                }
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 1, "function": {"arguments": ARGS_1[3:]}}]}),
    chunk({}, finish="tool_calls"),
    usage_chunk(),
    DONE,
]

COMPLETION = {
    "id": "chatcmpl-9",
    "object": "chat.completion",
    "created": 1700000001,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Four.", "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        },
        {
            "index": 1,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_x",
                        "type": "function",
                        "function": {"name": "add", "arguments": '{"a":2,"b":2}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        },
    ],
    "usage": USAGE,
    "system_fingerprint": "fp_9",
    "service_tier": "default",
}


def test_text_stream_becomes_one_completion_with_usage():
    obj = sse_to_completion(TEXT_STREAM)
    assert obj["object"] == "chat.completion"
    assert (obj["id"], obj["created"], obj["model"], obj["system_fingerprint"]) == (
        "chatcmpl-1",
        1700000000,
        "gpt-4o-mini",
        "fp_1",
    )
    assert obj["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello, world", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert obj["usage"] == USAGE


def test_tool_call_stream_keeps_every_argument_byte():
    obj = sse_to_completion(TOOL_STREAM)
    message = obj["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": ARGS_0}},
        {"id": "call_b", "type": "function", "function": {"name": "search", "arguments": ARGS_1}},
    ]
    assert obj["choices"][0]["finish_reason"] == "tool_calls"


def test_n_choices_are_accumulated_separately():
    events = [
        chunk({"role": "assistant", "content": "A"}, index=0),
        chunk({"role": "assistant", "content": "B"}, index=1),
        chunk({"content": "a"}, index=0),
        chunk({}, index=1, finish="length"),
        chunk({}, index=0, finish="stop"),
        DONE,
    ]
    obj = sse_to_completion(events)
    assert [(c["message"]["content"], c["finish_reason"]) for c in obj["choices"]] == [
        ("Aa", "stop"),
        ("B", "length"),
    ]


def test_completion_to_sse_to_completion_is_equal():
    events = completion_to_sse(COMPLETION, include_usage=True)
    assert events[-1] == DONE
    assert sse_to_completion(events) == COMPLETION


def test_completion_to_sse_without_usage_has_no_usage_chunk():
    events = completion_to_sse(COMPLETION, include_usage=False)
    assert not any(b'"usage"' in e for e in events)
    assert "usage" not in sse_to_completion(events)


def test_stream_to_completion_to_stream_to_completion_is_stable():
    once = sse_to_completion(TOOL_STREAM)
    assert sse_to_completion(completion_to_sse(once, include_usage=True)) == once


def test_logprobs_survive_a_round_trip():
    lp = {"content": [{"token": "Four", "logprob": -0.1, "bytes": [70], "top_logprobs": []}], "refusal": None}
    obj = {**COMPLETION, "choices": [{**COMPLETION["choices"][0], "logprobs": lp}]}
    assert sse_to_completion(completion_to_sse(obj, include_usage=True)) == obj


def test_stream_replayed_to_stream_reproduces_the_original_events():
    assert replay_stream(TEXT_STREAM, include_usage=True) == TEXT_STREAM
    assert replay_stream(TEXT_STREAM, include_usage=False) == [e for e in TEXT_STREAM if e != usage_chunk()]


def test_stored_stream_bytes_round_trip():
    assert decode_events(encode_events(TOOL_STREAM)) == TOOL_STREAM


def test_replay_serves_each_stored_kind_in_each_form():
    stored_sse = encode_events(TEXT_STREAM)
    assert orjson.loads(replay("sse", stored_sse, stream=False, include_usage=False)) == sse_to_completion(
        TEXT_STREAM
    )
    assert replay("sse", stored_sse, stream=True, include_usage=True) == TEXT_STREAM
    stored_json = orjson.dumps(COMPLETION)
    assert replay("json", stored_json, stream=False, include_usage=False) == stored_json
    assert sse_to_completion(replay("json", stored_json, stream=True, include_usage=True)) == COMPLETION


# --- completeness ----------------------------------------------------------------------------------


def test_complete_answers_are_storable():
    assert is_complete_stream(TEXT_STREAM)
    assert is_complete_stream(TOOL_STREAM)
    assert is_complete_completion(COMPLETION)


def test_truncated_stream_is_not_storable():
    assert not is_complete_stream(TEXT_STREAM[:-1])  # no [DONE]
    assert not is_complete_stream(TEXT_STREAM[:3] + [DONE])  # no finish reason


def test_error_status_or_error_event_is_not_storable():
    assert not is_complete_stream(TEXT_STREAM, status=500)
    assert not is_complete_completion(COMPLETION, status=429)
    with_error = TEXT_STREAM[:2] + [data_event({"error": {"message": "boom"}})] + TEXT_STREAM[2:]
    assert not is_complete_stream(with_error)
    assert not is_complete_completion({"error": {"message": "x"}})


def test_content_filter_is_not_storable():
    filtered = TEXT_STREAM[:3] + [chunk({}, finish="content_filter"), DONE]
    assert not is_complete_stream(filtered)
    choice = {**COMPLETION["choices"][0], "finish_reason": "content_filter"}
    assert not is_complete_completion({**COMPLETION, "choices": [choice]})


def test_invalid_tool_call_json_is_not_storable():
    broken = TOOL_STREAM[:3] + TOOL_STREAM[4:]  # the second piece of call 0's arguments went missing
    assert not is_complete_stream(broken)
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": '}}
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": None, "tool_calls": [call]},
        "finish_reason": "tool_calls",
    }
    assert not is_complete_completion({**COMPLETION, "choices": [choice]})


def test_missing_finish_reason_or_choice_is_not_storable():
    choice = {**COMPLETION["choices"][0], "finish_reason": None}
    assert not is_complete_completion({**COMPLETION, "choices": [choice]})
    assert not is_complete_completion({**COMPLETION, "choices": []})
    assert not is_complete_completion(
        {**COMPLETION, "choices": [COMPLETION["choices"][1]]}
    )  # index 0 missing


def test_embeddings_completeness():
    ok = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    assert is_complete_embeddings(ok)
    assert not is_complete_embeddings(ok, status=500)
    assert not is_complete_embeddings({**ok, "data": []})


def test_openai_sdk_accepts_converted_forms():
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    from nextmodel_proxy.sse import event_json

    for event in completion_to_sse(COMPLETION, include_usage=True)[:-1]:
        ChatCompletionChunk.model_validate(event_json(event))
    parsed = ChatCompletion.model_validate(sse_to_completion(TOOL_STREAM))
    assert parsed.choices[0].message.tool_calls[1].function.arguments == ARGS_1
    assert parsed.usage.completion_tokens == 7


def test_malformed_upstream_data_is_never_storable_and_never_raises():
    weird = [
        data_event({"choices": [{"index": "zero", "delta": {"content": "x"}, "finish_reason": "stop"}]}),
        data_event({"choices": {"not": "a list"}}),
        data_event({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": None, "function": {}}]}}]}),
        data_event(
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {"tool_calls": [{"function": {"arguments": {"a": 1}}}]},
                        "finish_reason": "tool_calls",
                    }
                ]
            }
        ),
        b": keep-alive\n\n",
        b"data: not json\n\n",
        DONE,
    ]
    assert not is_complete_stream(weird)
    assert not is_complete_completion({"choices": [{"index": "0", "message": {}, "finish_reason": "stop"}]})
    assert not is_complete_completion({"choices": "nope"})
