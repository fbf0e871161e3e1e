"""Anthropic Messages stream events -> OpenAI chat.completion.chunk events (a pure state machine)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from nextmodel_proxy.sse import DONE, data_event, parse_event
from nextmodel_proxy.upstream import chat_shapes as cs
from nextmodel_proxy.upstream.anthropic_translate import (
    THINKING_BLOCK_TYPES,
    error_details,
    finish_reason,
    map_usage,
)


class AnthropicStream:
    """Feed raw Anthropic SSE events; get OpenAI SSE events back, ending in [DONE] or an error event."""

    __slots__ = ("done", "_chunks", "_usage", "_tools", "_args_sent", "_tool_count", "_model", "_thinking")

    def __init__(self, model: str) -> None:
        self.done = False
        self._model = model
        self._chunks = cs.ChunkMaker("msg_unknown", int(time.time()), model)
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, tuple[int, dict[str, Any]]] = {}  # block index -> (tool index, start input)
        self._args_sent: set[int] = set()  # block indexes whose arguments got at least one byte
        self._tool_count = 0
        self._thinking: dict[int, dict[str, Any]] = {}  # block index -> thinking block being rebuilt

    def feed(self, raw: bytes) -> list[bytes]:
        if self.done:
            return []
        ev = parse_event(raw)
        if ev.data is None:
            return []
        try:
            obj = orjson.loads(ev.data)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(obj, dict):
            return []
        handler = _HANDLERS.get(obj.get("type") or ev.event or "")
        return handler(self, obj) if handler else []

    def end(self) -> list[bytes]:
        """The upstream ended without message_stop: nothing more to say, and no [DONE] (it is incomplete)."""
        return []

    def _delta(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return data_event(self._chunks.chunk(delta, finish))

    def _message_start(self, obj: dict[str, Any]) -> list[bytes]:
        msg = obj.get("message") or {}
        self._chunks = cs.ChunkMaker(
            msg.get("id") or "msg_unknown", int(time.time()), msg.get("model") or self._model
        )
        self._merge_usage(msg.get("usage"))
        return [self._delta({"role": "assistant", "content": ""})]

    def _block_start(self, obj: dict[str, Any]) -> list[bytes]:
        block = obj.get("content_block") or {}
        kind, index = block.get("type"), obj.get("index", 0)
        if kind == "text" and block.get("text"):
            return [self._delta({"content": block["text"]})]
        if kind in THINKING_BLOCK_TYPES:
            self._thinking[index] = dict(block)
            return []
        if kind != "tool_use":
            return []
        tool_index = self._tool_count
        self._tool_count += 1
        self._tools[index] = (tool_index, block.get("input") or {})
        call = {
            "index": tool_index,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": ""},
        }
        return [self._delta({"tool_calls": [call]})]

    def _block_delta(self, obj: dict[str, Any]) -> list[bytes]:
        delta, index = obj.get("delta") or {}, obj.get("index", 0)
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._delta({"content": delta.get("text", "")})]
        block = self._thinking.get(index)
        if kind == "thinking_delta" and block is not None:
            block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
            return [self._delta({"reasoning_content": delta.get("thinking", "")})]
        if kind == "signature_delta" and block is not None:
            block["signature"] = block.get("signature", "") + delta.get("signature", "")
            return []
        if kind == "input_json_delta" and index in self._tools and delta.get("partial_json"):
            self._args_sent.add(index)
            return [self._arguments(index, delta["partial_json"])]
        return []

    def _block_stop(self, obj: dict[str, Any]) -> list[bytes]:
        index = obj.get("index", 0)
        if index in self._tools and index not in self._args_sent:
            # A tool without parameters streams no JSON; clients still need a parseable arguments string.
            self._args_sent.add(index)
            return [self._arguments(index, orjson.dumps(self._tools[index][1]).decode())]
        return []

    def _arguments(self, index: int, fragment: str) -> bytes:
        return self._delta(
            {"tool_calls": [{"index": self._tools[index][0], "function": {"arguments": fragment}}]}
        )

    def _message_delta(self, obj: dict[str, Any]) -> list[bytes]:
        self._merge_usage(obj.get("usage"))
        reason = finish_reason((obj.get("delta") or {}).get("stop_reason"))
        out = []
        if self._thinking:
            # Whole signed blocks, once: the client must send them back with the next turn's tool results.
            blocks = [self._thinking[i] for i in sorted(self._thinking)]
            out.append(self._delta({"extra_content": {"anthropic": {"thinking_blocks": blocks}}}))
            self._thinking = {}
        if reason:
            out.append(self._delta({}, reason))
        return out

    def _message_stop(self, obj: dict[str, Any]) -> list[bytes]:
        self.done = True
        if not self._usage:  # no usage reported: say nothing rather than a priced-looking zero
            return [DONE]
        return [data_event(self._chunks.usage_chunk(map_usage(self._usage))), DONE]

    def _error(self, obj: dict[str, Any]) -> list[bytes]:
        self.done = True
        _, err = error_details(200, obj)
        return [data_event({"error": err})]

    def _merge_usage(self, usage: Any) -> None:
        # message_delta usage is cumulative; later non-null values replace earlier ones.
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})


_HANDLERS = {
    "message_start": AnthropicStream._message_start,
    "content_block_start": AnthropicStream._block_start,
    "content_block_delta": AnthropicStream._block_delta,
    "content_block_stop": AnthropicStream._block_stop,
    "message_delta": AnthropicStream._message_delta,
    "message_stop": AnthropicStream._message_stop,
    "error": AnthropicStream._error,
}
