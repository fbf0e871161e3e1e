"""Per-endpoint facts the request path needs: stream observer, error event, usage, storability, replay.

chat and embeddings keep their original behaviour (StreamTee, replay.py); the other endpoints are
answered in their own wire format, and their cache entries are replayed only to the same endpoint and the
same stream mode (both are in the cache key), so a replay is the stored bytes.
"""

from __future__ import annotations

from typing import Any

import orjson

from nextmodel_proxy.cache import replay
from nextmodel_proxy.endpoints import messages_reply, responses_reply
from nextmodel_proxy.endpoints.tees import MessagesTee, ResponsesTee
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.relay import error_event as chat_error_event
from nextmodel_proxy.tee import StreamTee
from nextmodel_proxy.upstream.anthropic_translate import map_usage

NATIVE_FORMATS = frozenset({"responses", "messages"})  # endpoints answered in a non-chat wire format
STREAMING = frozenset({"chat", "responses", "messages", "completions"})
# Endpoints whose cache key keeps `stream` (their stored answer is replayed byte for byte, never converted).
STREAM_KEYED = frozenset({"responses", "messages", "completions"})


def tee_for(endpoint: str, *, collect: bool) -> Any:
    if endpoint == "responses":
        return ResponsesTee(collect=collect)
    if endpoint == "messages":
        return MessagesTee(collect=collect)
    return StreamTee(collect=collect)


def error_event(endpoint: str, exc: ProxyError, tee: Any = None) -> bytes:
    """The last event of a stream that failed after it started, in that API's error shape (a Responses error
    event takes the next sequence number: one per event the tee has seen)."""
    if endpoint == "responses":
        seq = getattr(tee, "seen", 0)
        return responses_reply.error_event(exc.code, exc.message, exc.param, seq)
    if endpoint == "messages":
        return messages_reply.error_event(exc.status, exc.message)
    return chat_error_event(exc)


def body_facts(endpoint: str, raw: bytes) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(parsed object, usage in OpenAI chat semantics) of a non-stream answer."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        return obj, None
    if endpoint == "responses":
        return obj, responses_reply.usage_from_responses(usage)
    if endpoint == "messages":
        return obj, map_usage(usage)
    return obj, usage


def storable_body(endpoint: str, obj: Any, status: int) -> bool:
    if status != 200 or not isinstance(obj, dict) or obj.get("error") is not None:
        return False
    if endpoint == "responses":
        return obj.get("status") == "completed"
    if endpoint == "messages":
        return obj.get("type") == "message" and obj.get("stop_reason") in (
            "end_turn",
            "tool_use",
            "stop_sequence",
            "max_tokens",
        )
    if endpoint == "completions":
        choices = obj.get("choices")
        return (
            isinstance(choices, list)
            and bool(choices)
            and all(
                isinstance(c, dict)
                and isinstance(c.get("finish_reason"), str)
                and c["finish_reason"] != "content_filter"
                for c in choices
            )
        )
    if endpoint == "embeddings":
        return replay.is_complete_embeddings(obj, status=status)
    return replay.is_complete_completion(obj, status=status)


def storable_stream(endpoint: str, tee: Any) -> bool:
    if endpoint in NATIVE_FORMATS:
        return tee.storable
    if endpoint == "completions":
        return tee.complete and all(r != "content_filter" for r in tee.finish_reasons.values())
    return replay.is_complete_stream(tee.events)


def replay_body(
    endpoint: str, kind: str, body: bytes, *, stream: bool, include_usage: bool
) -> bytes | list[bytes]:
    """A stored answer as this request wants it."""
    if endpoint not in STREAM_KEYED:
        return replay.replay(kind, body, stream=stream, include_usage=include_usage)
    if kind == "json":
        return body
    events = replay.decode_events(body)
    return replay.replay_stream(events, include_usage=include_usage) if endpoint == "completions" else events


def stored_usage(endpoint: str, kind: str, body: bytes) -> dict[str, Any] | None:
    """The usage (OpenAI chat semantics) of a stored or shared answer."""
    if endpoint not in STREAM_KEYED:
        obj = orjson.loads(body) if kind == "json" else replay.sse_to_completion(replay.decode_events(body))
        usage = obj.get("usage") if isinstance(obj, dict) else None
        return usage if isinstance(usage, dict) else None
    if kind == "json":
        return body_facts(endpoint, body)[1]
    tee = tee_for(endpoint, collect=False)
    for raw in replay.decode_events(body):
        tee.observe(raw)
    return tee.usage
