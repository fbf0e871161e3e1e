"""chat.completion answers -> Anthropic Messages answers and events; error bodies in Anthropic's shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from nextmodel_proxy.endpoints.chat_chunks import ChatStreamTranslator
from nextmodel_proxy.sse import named_event

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "invalid_request_error" if 400 <= status < 500 else "api_error")


def error_body(status: int, message: str) -> bytes:
    """Anthropic's error shape: {"type":"error","error":{"type","message"}}."""
    return orjson.dumps({"type": "error", "error": {"type": error_type(status), "message": message}})


def error_from_openai(status: int, raw: bytes) -> bytes:
    """An OpenAI-shaped error body (ours or a chat upstream's) in Anthropic's shape."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj = None
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(obj, dict) and obj.get("type") == "error":
        return raw  # already Anthropic-shaped
    message = err.get("message") if isinstance(err, dict) and isinstance(err.get("message"), str) else None
    return error_body(status, message or f"upstream answered HTTP {status}")


def error_event(status: int, message: str) -> bytes:
    return named_event("error", {"type": "error", "error": {"type": error_type(status), "message": message}})


def usage_to_anthropic(usage: Mapping[str, Any] | None) -> dict[str, int]:
    """Anthropic usage for OpenAI chat usage: input_tokens excludes cache reads and writes."""
    if not isinstance(usage, Mapping):
        return {"input_tokens": 0, "output_tokens": 0}
    details = (
        usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    )
    reads = details.get("cached_tokens") or 0
    writes = details.get("cache_write_tokens") or 0
    return {
        "input_tokens": max(0, (usage.get("prompt_tokens") or 0) - reads - writes),
        "output_tokens": usage.get("completion_tokens") or 0,
        "cache_creation_input_tokens": writes,
        "cache_read_input_tokens": reads,
    }


def _msg_id(chat_id: Any) -> str:
    base = str(chat_id or "unknown")
    return base if base.startswith("msg_") else "msg_" + base.removeprefix("chatcmpl-")


def _tool_input(arguments: Any) -> Any:
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def from_completion(obj: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
    """The Message object for a non-stream chat.completion."""
    choices = obj.get("choices") if isinstance(obj.get("choices"), list) else []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content: list[dict[str, Any]] = []
    if isinstance(message.get("content"), str) and message["content"]:
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": fn.get("name"),
                "input": _tool_input(fn.get("arguments")),
            }
        )
    return {
        "id": _msg_id(obj.get("id")),
        "type": "message",
        "role": "assistant",
        "model": obj.get("model") or request.get("model"),
        "content": content,
        "stop_reason": STOP_REASONS.get(str(choice.get("finish_reason")), "end_turn"),
        "stop_sequence": None,
        "usage": usage_to_anthropic(obj.get("usage")),
    }


def from_completion_bytes(raw: bytes, request: Mapping[str, Any]) -> bytes:
    return orjson.dumps(from_completion(orjson.loads(raw), request))


class ChatToMessagesStream(ChatStreamTranslator):
    """Feed chat.completion.chunk events; get message_start ... message_stop back (input_json_delta for tools)."""

    __slots__ = ("done", "_request", "_started", "_block", "_blocks", "_calls", "_finish", "_usage")

    def __init__(self, request: Mapping[str, Any]) -> None:
        self.done = False
        self._request = request
        self._started = False
        self._block: tuple[str, Any] | None = None  # the open block: ("text", None) or ("tool", chat index)
        self._blocks = 0  # content blocks started so far
        self._calls: dict[int, int] = {}  # chat tool index -> block index
        self._finish: Any = None
        self._usage: Any = None

    def _error(self, err: Mapping[str, Any]) -> list[bytes]:
        status = 529 if err.get("type") == "overloaded_error" else 500
        return [error_event(status, str(err.get("message") or "upstream error"))]

    def _part(self, kind: str, value: Any) -> list[bytes]:
        if kind == "text":
            return self._text(value)
        if kind == "call":
            return self._tool(value)
        if kind == "usage":
            self._usage = value
        elif kind == "finish":
            self._finish = value
        return []  # reasoning text has no unsigned thinking block to go into

    def _start(self, obj: Mapping[str, Any]) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        message = {
            "id": _msg_id(obj.get("id")),
            "type": "message",
            "role": "assistant",
            "model": obj.get("model") or self._request.get("model"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [
            named_event("message_start", {"type": "message_start", "message": message}),
            named_event("ping", {"type": "ping"}),
        ]

    def _close(self) -> list[bytes]:
        if self._block is None:
            return []
        self._block = None
        return [named_event("content_block_stop", {"type": "content_block_stop", "index": self._blocks - 1})]

    def _open(self, kind: tuple[str, Any], block: dict[str, Any]) -> list[bytes]:
        out = self._close()
        self._block = kind
        self._blocks += 1
        out.append(
            named_event(
                "content_block_start",
                {"type": "content_block_start", "index": self._blocks - 1, "content_block": block},
            )
        )
        return out

    def _text(self, text: str) -> list[bytes]:
        out = (
            [] if self._block == ("text", None) else self._open(("text", None), {"type": "text", "text": ""})
        )
        delta = {"type": "text_delta", "text": text}
        out.append(
            named_event(
                "content_block_delta",
                {"type": "content_block_delta", "index": self._blocks - 1, "delta": delta},
            )
        )
        return out

    def _tool(self, call: Mapping[str, Any]) -> list[bytes]:
        index = call.get("index", 0)
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        out: list[bytes] = []
        if index not in self._calls:
            block = {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{index}",
                "name": fn.get("name") or "",
                "input": {},
            }
            out = self._open(("tool", index), block)
            self._calls[index] = self._blocks - 1
        elif self._block != ("tool", index):
            return []  # arguments for a call whose block is already closed: interleaving chat cannot express here
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            delta = {"type": "input_json_delta", "partial_json": args}
            out.append(
                named_event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": self._calls[index], "delta": delta},
                )
            )
        return out

    def _complete(self) -> list[bytes]:
        self.done = True
        if self._finish is None:
            return []  # [DONE] without a finish reason: cut short, no message_stop
        out = self._start({}) + self._close()
        delta = {"stop_reason": STOP_REASONS.get(str(self._finish), "end_turn"), "stop_sequence": None}
        out.append(
            named_event(
                "message_delta",
                {"type": "message_delta", "delta": delta, "usage": usage_to_anthropic(self._usage)},
            )
        )
        out.append(named_event("message_stop", {"type": "message_stop"}))
        return out
