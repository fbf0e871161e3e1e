"""Reading one chat.completion.chunk for the stream translators (pure)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from nextmodel_proxy.sse import event_json, is_done


def chunk_parts(obj: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """("usage", dict), then for choice 0: ("reasoning", str), ("text", str), ("call", dict), ("finish", str)."""
    if isinstance(obj.get("usage"), dict):
        yield "usage", obj["usage"]
    for choice in obj.get("choices") or []:
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        for key, kind in (("reasoning_content", "reasoning"), ("content", "text")):
            if isinstance(delta.get(key), str) and delta[key]:
                yield kind, delta[key]
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                yield "call", call
        if choice.get("finish_reason"):
            yield "finish", choice["finish_reason"]


class ChatStreamTranslator:
    """Feed chat chunk events, get another API's events: [DONE] -> `_complete`, an error event -> `_error`,
    anything else -> `_start` (once) and `_part` per chunk part. Subclasses build the events."""

    __slots__ = ()
    done: bool

    def feed(self, raw: bytes) -> list[bytes]:
        if self.done:
            return []
        if is_done(raw):
            return self._complete()
        obj = event_json(raw)
        if obj is None:
            return []
        out = self._start(obj)
        if isinstance(obj.get("error"), dict):
            self.done = True
            return out + self._error(obj["error"])
        for kind, value in chunk_parts(obj):
            out += self._part(kind, value)
        return out

    def end(self) -> list[bytes]:
        """The chat stream ended without [DONE]: nothing owed (the answer is incomplete)."""
        return []

    def _start(self, obj: Mapping[str, Any]) -> list[bytes]:
        raise NotImplementedError

    def _error(self, err: Mapping[str, Any]) -> list[bytes]:
        raise NotImplementedError

    def _part(self, kind: str, value: Any) -> list[bytes]:
        raise NotImplementedError

    def _complete(self) -> list[bytes]:
        raise NotImplementedError
