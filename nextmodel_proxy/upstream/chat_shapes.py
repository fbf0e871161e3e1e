"""OpenAI chat shapes shared by the translating adapters: request checks, response, chunk and error builders."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from nextmodel_proxy.errors import ProxyError, bad_request

# Status -> OpenAI error `type` for errors a provider reports.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;base64,(?P<data>.*)", re.S)

# Parameter -> predicate saying the value asks for something a provider cannot do.
Unsupported = Mapping[str, Callable[[Any], bool]]


def is_set(value: Any) -> bool:
    return value is not None


def not_one(value: Any) -> bool:
    return value is not None and value != 1


def truthy(value: Any) -> bool:
    return bool(value)


def non_zero(value: Any) -> bool:
    return value is not None and value != 0


def reject_unsupported(body: Mapping[str, Any], rules: Unsupported, provider: str) -> None:
    """400 unsupported_parameter naming the first parameter this provider cannot honour."""
    for name, asks_for_it in rules.items():
        if name in body and asks_for_it(body[name]):
            raise ProxyError(
                400,
                f"{name}={body[name]!r} is not supported by {provider} models",
                "unsupported_parameter",
                param=name,
            )


def messages_of(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty array", "invalid_value", "messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise bad_request(
                f"messages[{i}] must be an object with a role", "invalid_value", f"messages[{i}]"
            )
    return messages


def unknown_role(role: str, param: str) -> ProxyError:
    return bad_request(f"{param}.role {role!r} is not supported", "invalid_value", f"{param}.role")


def append_turn(turns: list[dict[str, Any]], role: str, items: list[dict[str, Any]], key: str) -> None:
    """Add a turn, merging it into the previous one when the role repeats (providers want alternation)."""
    if not items:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})


def text_of(content: Any, param: str) -> str:
    """The text of a string content or of an array of text parts (system and tool messages)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
                raise bad_request(f"{param}[{j}] must be a text part here", "invalid_value", f"{param}[{j}]")
            texts.append(part.get("text") or part.get("refusal") or "")
        return "".join(texts)
    raise bad_request(f"{param} must be a string or an array of parts", "invalid_type", param)


def user_parts(content: Any, param: str, provider: str) -> list[tuple[str, dict[str, Any], str]]:
    """(type, part, param) for each non-empty text or image_url part of a user message; other types are a 400."""
    if isinstance(content, str):
        return [("text", {"type": "text", "text": content}, param)] if content else []
    if not isinstance(content, list):
        raise bad_request(f"{param} must be a string or an array of parts", "invalid_type", param)
    out = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("text", "image_url"):
            raise ProxyError(
                400,
                f"{param}[{j}]: content part type {kind!r} is not supported by {provider} models",
                "unsupported_parameter",
                param=f"{param}[{j}].type",
            )
        if kind == "image_url" or part.get("text"):
            out.append((kind, part, f"{param}[{j}]"))
    return out


def image_url_of(part: Mapping[str, Any], param: str) -> str:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise bad_request(f"{param}.image_url.url must be a string", "invalid_value", f"{param}.image_url")
    return url


def parse_data_url(url: str) -> tuple[str, str] | None:
    """(mime type, base64 data) of a base64 data: URL, None for any other URL."""
    m = _DATA_URL.fullmatch(url)
    return (m["mime"], m["data"]) if m else None


def tool_arguments(call: Mapping[str, Any], param: str) -> dict[str, Any]:
    """The decoded JSON object of an assistant tool call's `function.arguments`."""
    fn = call.get("function")
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise bad_request(f"{param}.function.name is required", "missing_field", f"{param}.function.name")
    raw = fn.get("arguments") or "{}"
    try:
        args = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        raise bad_request(
            f"{param}.function.arguments is not valid JSON", "invalid_value", f"{param}.function.arguments"
        ) from None
    if not isinstance(args, dict):
        raise bad_request(
            f"{param}.function.arguments must be a JSON object",
            "invalid_value",
            f"{param}.function.arguments",
        )
    return args


def function_tools(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `function` objects of body.tools; other tool types are a 400."""
    out = []
    for i, tool in enumerate(body.get("tools") or []):
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(tool.get("function"), dict)
        ):
            raise ProxyError(
                400,
                f"tools[{i}]: only function tools are supported by this provider",
                "unsupported_parameter",
                param=f"tools[{i}]",
            )
        if not isinstance(tool["function"].get("name"), str):
            raise bad_request(
                f"tools[{i}].function.name is required", "missing_field", f"tools[{i}].function.name"
            )
        out.append(tool["function"])
    return out


def stop_list(body: Mapping[str, Any]) -> list[str] | None:
    stop = body.get("stop")
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return stop
    raise bad_request("stop must be a string or an array of strings", "invalid_type", "stop")


def max_tokens_of(body: Mapping[str, Any]) -> int | None:
    value = body.get("max_completion_tokens")
    if value is None:
        value = body.get("max_tokens")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise bad_request("max_tokens must be a positive integer", "invalid_value", "max_tokens")
    return value


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def completion(
    cid: str,
    created: int,
    model: str,
    message: dict[str, Any],
    finish_reason: str | None,
    usage: dict[str, Any] | None,
) -> dict[str, Any]:
    """A chat.completion object with one choice."""
    out = {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not None:
        out["usage"] = usage
    return out


def assistant_message(text: str, tool_calls: list[dict[str, Any]], reasoning: str = "") -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text or (None if tool_calls else ""),
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = reasoning
    return message


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


class ChunkMaker:
    """Builds chat.completion.chunk objects that share one id, created time and model."""

    __slots__ = ("id", "created", "model")

    def __init__(self, cid: str, created: int, model: str) -> None:
        self.id, self.created, self.model = cid, created, model

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }

    def usage_chunk(self, usage: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage,
        }


def error_object(status: int, message: str, code: str | None, type_: str | None = None) -> dict[str, Any]:
    """The inner OpenAI error object for an error a provider reported."""
    return {
        "message": message,
        "type": type_ or _ERROR_TYPES.get(status, "api_error"),
        "param": None,
        "code": code,
    }


def translate_error(
    status: int, raw: bytes, details: Callable[[int, Any], tuple[int, dict[str, Any]]]
) -> tuple[int, bytes]:
    """(status, OpenAI error JSON) for a provider's error body, read by that provider's `details`."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj = None
    status, err = details(status, obj)
    return status, orjson.dumps({"error": err})
