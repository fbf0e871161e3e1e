"""Stream observers for the Responses and Messages wire formats (the StreamTee interface, other events)."""

from __future__ import annotations

from typing import Any

from nextmodel_proxy.endpoints.responses_reply import usage_from_responses
from nextmodel_proxy.sse import event_json
from nextmodel_proxy.upstream.anthropic_translate import map_usage

_RESPONSES_PROBES = (
    b"response.created",
    b"response.completed",
    b"response.incomplete",
    b"response.failed",
    b'"type":"error"',
    b"event: error",
)
_TERMINAL = {
    "response.completed": "completed",
    "response.incomplete": "incomplete",
    "response.failed": "failed",
}
_MESSAGES_PROBES = (b"message_start", b"message_delta", b"message_stop", b'"type":"error"', b"event: error")


class _Tee:
    __slots__ = ("events", "usage", "done", "error", "collect", "response_id", "model", "storable", "seen")

    def __init__(self, *, collect: bool) -> None:
        self.collect = collect
        self.events: list[bytes] = []
        self.usage: dict[str, Any] | None = None
        self.done = False
        self.error: dict[str, Any] | None = None
        self.response_id: str | None = None
        self.model: str | None = None
        self.storable = False  # a complete answer that may be replayed
        self.seen = 0  # events observed (a Responses stream numbers its events from 0)

    @property
    def complete(self) -> bool:
        return self.done and self.error is None

    @staticmethod
    def may_start_final(raw: bytes) -> bool:
        """Every event is observed: the end is a terminal event of the endpoint's own kind."""
        return True

    def content_chars(self) -> int:
        """Characters of generated text and tool arguments in the collected events (for estimates)."""
        total = 0
        for raw in self.events:
            obj = event_json(raw) or {}
            delta = obj.get("delta")
            if isinstance(delta, str):  # Responses output_text / function_call_arguments deltas
                total += len(delta)
            elif isinstance(delta, dict):  # Messages text_delta / input_json_delta
                total += len(str(delta.get("text") or delta.get("partial_json") or ""))
        return total


class ResponsesTee(_Tee):
    """Watches Responses events: the id on response.created; usage and the end on whichever terminal event."""

    __slots__ = ()

    def observe(self, raw: bytes) -> bool:
        self.seen += 1
        if self.collect:
            self.events.append(raw)
        if not any(p in raw for p in _RESPONSES_PROBES):
            return False
        obj = event_json(raw)
        kind = obj.get("type") if obj else None
        if kind == "error":
            self.error = {"code": obj.get("code") or "upstream_error", "message": obj.get("message")}
            self.done = True
            return False
        response = obj.get("response") if obj and isinstance(obj.get("response"), dict) else None
        if response is None:
            return False
        if kind == "response.created":
            self.response_id = response.get("id") if isinstance(response.get("id"), str) else None
            self.model = response.get("model") if isinstance(response.get("model"), str) else None
        elif kind in _TERMINAL:
            self.done = True
            self.usage = usage_from_responses(response.get("usage"))
            if kind == "response.failed":
                err = response.get("error") if isinstance(response.get("error"), dict) else {}
                self.error = {"code": err.get("code") or "response_failed", "message": err.get("message")}
            self.storable = kind == "response.completed"
        return False


class MessagesTee(_Tee):
    """Watches Anthropic Messages events: usage from message_start and message_delta; done at message_stop."""

    __slots__ = ("_usage",)

    def __init__(self, *, collect: bool) -> None:
        super().__init__(collect=collect)
        self._usage: dict[str, Any] = {}

    def observe(self, raw: bytes) -> bool:
        if self.collect:
            self.events.append(raw)
        if not any(p in raw for p in _MESSAGES_PROBES):
            return False
        obj = event_json(raw)
        kind = obj.get("type") if obj else None
        if kind == "message_start" and isinstance(obj.get("message"), dict):
            msg = obj["message"]
            self.response_id = msg.get("id") if isinstance(msg.get("id"), str) else None
            self.model = msg.get("model") if isinstance(msg.get("model"), str) else None
            self._merge(msg.get("usage"))
        elif kind == "message_delta":
            self._merge(obj.get("usage"))
        elif kind == "message_stop":
            self.done = True
            self.storable = self.error is None
        elif kind == "error":
            err = obj.get("error") if isinstance(obj.get("error"), dict) else {}
            self.error = {"code": err.get("type") or "upstream_error", "message": err.get("message")}
        return False

    def _merge(self, usage: Any) -> None:
        # message_delta usage is cumulative: later non-null values replace earlier ones
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})
            self.usage = map_usage(self._usage)
