"""Request shape checks for the endpoints we proxy (pure). Unknown fields are left alone."""

from __future__ import annotations

from typing import Any

import orjson

from nextmodel_proxy.errors import ProxyError, bad_request

_NUMBER_FIELDS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_INT_FIELDS = ("max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs")


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong."""
    if not raw.strip():
        raise bad_request("The request body is empty; send a JSON object.", "invalid_body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request(f"The request body must be a JSON object, not {_kind(body)}.", "invalid_body")
    # Nesting needs an opening bracket per level: a body with at most MAX_DEPTH of them (the usual request)
    # cannot be too deep, and counting bytes is far cheaper than walking the parsed object.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _too_deep(body, MAX_DEPTH):
        raise bad_request(f"The request body nests deeper than {MAX_DEPTH} levels.", "invalid_body")
    return body


MAX_DEPTH = 64  # real requests nest a handful of levels; far deeper ones only exhaust recursion downstream


def _too_deep(value: Any, budget: int) -> bool:
    """True when arrays/objects nest more than `budget` levels (iterative: no recursion limit to hit)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > budget:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, dict | list))
    return False


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def bad_header(name: str, problem: str) -> ProxyError:
    """400 invalid_header naming the request header (param) and what is wrong with it."""
    return bad_request(f"Request header {name} {problem}.", "invalid_header", name)


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise bad_request("You must provide a model parameter.", "missing_field", "model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request(f"'model' must be a non-empty string, not {_kind(model)}.", "invalid_type", "model")
    return model


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_chat(body: dict[str, Any]) -> None:
    """The fields whose wrong type would otherwise surface as a confusing upstream or proxy failure."""
    messages = body.get("messages")
    if messages is None:
        raise bad_request("Missing required parameter: 'messages'.", "missing_field", "messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty array.", "invalid_type", "messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise bad_request(f"'messages[{i}]' must be an object.", "invalid_type", f"messages[{i}]")
        if not isinstance(msg.get("role"), str):
            raise bad_request(
                f"'messages[{i}].role' must be a string.", "invalid_type", f"messages[{i}].role"
            )
    _check_common(body)
    opts = body.get("stream_options")
    if opts is not None and not isinstance(opts, dict):
        raise bad_request("'stream_options' must be an object.", "invalid_type", "stream_options")
    if body.get("tools") is not None and not isinstance(body["tools"], list):
        raise bad_request("'tools' must be an array.", "invalid_type", "tools")


def check_embeddings(body: dict[str, Any]) -> None:
    value = body.get("input")
    if value is None:
        raise bad_request("Missing required parameter: 'input'.", "missing_field", "input")
    if not isinstance(value, str | list) or (isinstance(value, list) and not value):
        raise bad_request("'input' must be a string or a non-empty array.", "invalid_type", "input")


def _check_common(body: dict[str, Any]) -> None:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise bad_request("'stream' must be a boolean.", "invalid_type", "stream")
    for name in _NUMBER_FIELDS:
        if body.get(name) is not None and not _is_number(body[name]):
            raise bad_request(f"'{name}' must be a number.", "invalid_type", name)
    for name in _INT_FIELDS:
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise bad_request(f"'{name}' must be an integer.", "invalid_type", name)
        if name in ("max_tokens", "max_completion_tokens", "n") and isinstance(value, int) and value < 1:
            raise bad_request(f"'{name}' must be at least 1.", "invalid_value", name)


def stream_requested(body: dict[str, Any]) -> bool:
    return body.get("stream") is True


def too_large(limit: int) -> ProxyError:
    return ProxyError(413, f"Request body is larger than the limit of {limit} bytes.", "body_too_large")
