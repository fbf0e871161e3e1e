"""Replays (pure): turn a stored answer into what the client asked for, and decide what may be stored.

A stored stream is a list of raw SSE events (OpenAI chat.completion.chunk format, ending with [DONE]);
a stored JSON answer is the upstream body bytes. Stream and non-stream requests share entries, so each
form can be converted into the other; a stream replayed to a stream request is the original events.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import orjson

from nextmodel_proxy.sse import DONE, SSESplitter, data_event, event_json, is_done

_HEAD_FIELDS = ("id", "created", "model", "system_fingerprint", "service_tier")
_MESSAGE_SPECIAL = frozenset({"role", "content", "tool_calls", "function_call"})


# --- stored stream bytes ---------------------------------------------------------------------------------


def encode_events(events: Iterable[bytes]) -> bytes:
    """The BLOB stored for a stream: the events back to back (each already ends with a blank line)."""
    return b"".join(events)


def decode_events(body: bytes) -> list[bytes]:
    """The events of a stored stream, byte for byte as they were stored."""
    splitter = SSESplitter()
    events = splitter.feed(body)
    tail = splitter.tail()
    return events + [tail] if tail else events


# --- stream -> one chat.completion ---------------------------------------------------------------------


def _merge_text_or_value(target: dict[str, Any], key: str, value: Any) -> None:
    """Strings concatenate, lists extend, None never overwrites, anything else replaces."""
    current = target.get(key)
    if isinstance(value, str) and isinstance(current, str):
        target[key] = current + value
    elif isinstance(value, list) and isinstance(current, list):
        current.extend(copy.deepcopy(value))
    elif value is None:
        target.setdefault(key, None)
    else:
        target[key] = copy.deepcopy(value)


def _merge_call(call: dict[str, Any], delta: dict[str, Any]) -> None:
    """One tool-call (or legacy function_call) delta: id/type/name arrive once, arguments in pieces."""
    for key, value in delta.items():
        if key == "index":
            continue
        if key == "function" and isinstance(value, dict):
            fn = call.setdefault("function", {})
            for fk, fv in value.items():
                if fk == "arguments":
                    fn["arguments"] = fn.get("arguments", "") + (fv if isinstance(fv, str) else "")
                elif fv is not None and fn.get(fk) is None:
                    fn[fk] = fv  # a name repeated by some providers is not doubled
        elif key == "arguments":  # legacy function_call
            call["arguments"] = call.get("arguments", "") + (value if isinstance(value, str) else "")
        elif value is not None and call.get(key) is None:
            call[key] = value


def _index(item: dict[str, Any]) -> int | None:
    """A choice's or tool call's index (0 when absent); None for a malformed one, which is skipped."""
    index = item.get("index", 0)
    return index if isinstance(index, int) and not isinstance(index, bool) and index >= 0 else None


class _Choice:
    __slots__ = ("message", "calls", "function_call", "logprobs", "finish_reason")

    def __init__(self) -> None:
        self.message: dict[str, Any] = {"role": "assistant"}
        self.calls: dict[int, dict[str, Any]] = {}
        self.function_call: dict[str, Any] | None = None
        self.logprobs: dict[str, Any] | None = None
        self.finish_reason: str | None = None

    def feed(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        for key, value in delta.items():
            if key == "tool_calls" and isinstance(value, list):
                for tc in value:
                    if isinstance(tc, dict) and _index(tc) is not None:
                        _merge_call(self.calls.setdefault(_index(tc), {}), tc)
            elif key == "function_call" and isinstance(value, dict):
                self.function_call = self.function_call or {}
                _merge_call(self.function_call, value)
            elif key == "role" and value:
                self.message["role"] = value
            else:
                _merge_text_or_value(self.message, key, value)
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            if self.logprobs is None:
                self.logprobs = copy.deepcopy(logprobs)
            else:
                for key, value in logprobs.items():
                    _merge_text_or_value(self.logprobs, key, value)
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]

    def result(self, index: int) -> dict[str, Any]:
        message = dict(self.message)
        message.setdefault("content", None)
        if self.calls:
            message["tool_calls"] = [{"type": "function", **self.calls[i]} for i in sorted(self.calls)]
        if self.function_call is not None:
            message["function_call"] = self.function_call
        return {
            "index": index,
            "message": message,
            "logprobs": self.logprobs,
            "finish_reason": self.finish_reason,
        }


def _accumulate(events: Iterable[bytes]) -> tuple[dict[str, Any], bool, bool]:
    """(completion, saw [DONE], saw an error event) of a stream of chunk events."""
    head: dict[str, Any] = {}
    choices: dict[int, _Choice] = {}
    usage: dict[str, Any] | None = None
    done = error = False
    for raw in events:
        obj = event_json(raw)
        if obj is None:
            done = done or is_done(raw)
            continue
        if obj.get("error") is not None:
            error = True
        for field in _HEAD_FIELDS:
            if head.get(field) is None and obj.get(field) is not None:
                head[field] = obj[field]
        if isinstance(obj.get("usage"), dict):
            usage = obj["usage"]
        for choice in obj.get("choices") if isinstance(obj.get("choices"), list) else ():
            if isinstance(choice, dict) and _index(choice) is not None:
                choices.setdefault(_index(choice), _Choice()).feed(choice)
    completion: dict[str, Any] = {
        "id": head.get("id"),
        "object": "chat.completion",
        "created": head.get("created"),
        "model": head.get("model"),
        "choices": [choices[i].result(i) for i in sorted(choices)],
    }
    if usage is not None:
        completion["usage"] = usage
    for field in ("system_fingerprint", "service_tier"):
        if field in head:
            completion[field] = head[field]
    return completion, done, error


def sse_to_completion(events: list[bytes]) -> dict[str, Any]:
    """A stream of chat.completion.chunk events accumulated into the one chat.completion it stands for."""
    return _accumulate(events)[0]


# --- one chat.completion -> stream -------------------------------------------------------------------


def _chunk(
    head: dict[str, Any],
    index: int,
    delta: dict[str, Any],
    logprobs: Any = None,
    finish_reason: str | None = None,
) -> bytes:
    choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
    return data_event({**head, "choices": [choice]})


def _choice_events(head: dict[str, Any], choice: dict[str, Any]) -> list[bytes]:
    index = _index(choice) or 0
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content = message.get("content")
    logprobs = choice.get("logprobs")
    role_delta = {
        "role": message.get("role", "assistant"),
        "content": "" if isinstance(content, str) else None,
    }
    role_delta.update({k: v for k, v in message.items() if k not in _MESSAGE_SPECIAL})
    has_text = isinstance(content, str) and content != ""
    out = [_chunk(head, index, role_delta, None if has_text else logprobs)]
    if has_text:
        out.append(_chunk(head, index, {"content": content}, logprobs))
    for j, call in enumerate(message.get("tool_calls") or ()):
        out.append(_chunk(head, index, {"tool_calls": [{"index": j, **call}]}))
    if isinstance(message.get("function_call"), dict):
        out.append(_chunk(head, index, {"function_call": message["function_call"]}))
    out.append(_chunk(head, index, {}, None, choice.get("finish_reason")))
    return out


def completion_to_sse(obj: dict[str, Any], *, include_usage: bool) -> list[bytes]:
    """A chat.completion as the chunk events a stream request would have received, ending with [DONE]."""
    head: dict[str, Any] = {
        "id": obj.get("id"),
        "object": "chat.completion.chunk",
        "created": obj.get("created"),
        "model": obj.get("model"),
    }
    for field in ("system_fingerprint", "service_tier"):
        if field in obj:
            head[field] = obj[field]
    events: list[bytes] = []
    for choice in sorted(obj.get("choices") or (), key=lambda c: _index(c) or 0):
        events.extend(_choice_events(head, choice))
    if include_usage and obj.get("usage") is not None:
        events.append(data_event({**head, "choices": [], "usage": obj["usage"]}))
    events.append(DONE)
    return events


def _is_usage_chunk(raw: bytes) -> bool:
    if b'"usage"' not in raw:
        return False
    obj = event_json(raw)
    return obj is not None and obj.get("choices") == [] and isinstance(obj.get("usage"), dict)


def replay_stream(events: list[bytes], *, include_usage: bool) -> list[bytes]:
    """A stored stream for a stream request: the original events, minus the usage chunk if not asked for."""
    if include_usage:
        return list(events)
    return [raw for raw in events if not _is_usage_chunk(raw)]


def replay(kind: str, body: bytes, *, stream: bool, include_usage: bool) -> bytes | list[bytes]:
    """A stored entry as the client wants it: JSON bytes for a non-stream request, SSE events for a stream."""
    if kind == "json":
        return completion_to_sse(orjson.loads(body), include_usage=include_usage) if stream else body
    events = decode_events(body)
    if stream:
        return replay_stream(events, include_usage=include_usage)
    return orjson.dumps(sse_to_completion(events))


# --- what may be stored ------------------------------------------------------------------------------


def _valid_json(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def _choice_complete(choice: Any) -> bool:
    if not isinstance(choice, dict):
        return False
    reason = choice.get("finish_reason")
    if not isinstance(reason, str) or not reason or reason == "content_filter":
        return False
    message = choice.get("message")
    if not isinstance(message, dict):
        return False
    for call in message.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not _valid_json(fn.get("arguments")):
            return False
    legacy = message.get("function_call")
    return legacy is None or (isinstance(legacy, dict) and _valid_json(legacy.get("arguments")))


def is_complete_completion(obj: Any, *, status: int = 200) -> bool:
    """A chat.completion worth storing: 200, no error, every choice finished (not filtered), tool JSON valid."""
    if status != 200 or not isinstance(obj, dict) or obj.get("error") is not None:
        return False
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    if not all(_choice_complete(c) for c in choices):
        return False
    return sorted(_index(c) if _index(c) is not None else -1 for c in choices) == list(range(len(choices)))


def is_complete_stream(events: list[bytes], *, status: int = 200) -> bool:
    """A stream worth storing: ended with [DONE], no error event, and its accumulation is complete."""
    if status != 200:
        return False
    completion, done, error = _accumulate(events)
    return done and not error and is_complete_completion(completion)


def is_complete_embeddings(obj: Any, *, status: int = 200) -> bool:
    """An embeddings answer worth storing: 200, no error, a non-empty data list of embeddings."""
    if status != 200 or not isinstance(obj, dict) or obj.get("error") is not None:
        return False
    data = obj.get("data")
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(item, dict) and item.get("embedding") is not None for item in data)
    )
