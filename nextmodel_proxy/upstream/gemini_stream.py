"""Gemini streamGenerateContent (alt=sse) events -> OpenAI chat.completion.chunk events (pure)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from nextmodel_proxy.sse import DONE, data_event, parse_event
from nextmodel_proxy.upstream import chat_shapes as cs
from nextmodel_proxy.upstream.gemini_translate import (
    broken_answer,
    error_details,
    finish_reason,
    map_usage,
    read_parts,
)


class GeminiStream:
    """Each Gemini event is a whole GenerateContentResponse; the stream simply ends, so [DONE] is ours."""

    __slots__ = ("done", "_model", "_chunks", "_usage", "_tool_count", "_finished")

    def __init__(self, model: str) -> None:
        self.done = False
        self._model = model
        self._chunks: cs.ChunkMaker | None = None
        self._usage: dict[str, Any] | None = None
        self._tool_count = 0
        self._finished = False

    def feed(self, raw: bytes) -> list[bytes]:
        if self.done:
            return []
        data = parse_event(raw).data
        if data is None:
            return []
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(obj, dict):
            return []
        if "error" in obj:
            return self._fail(error_details(200, obj)[1])
        out = self._start(obj)
        if isinstance(obj.get("usageMetadata"), dict):
            self._usage = obj["usageMetadata"]
        candidates = obj.get("candidates") or []
        if candidates:
            out.extend(self._candidate(candidates[0]))
        return out

    def end(self) -> list[bytes]:
        """Gemini ends its stream by closing it: complete only if a finish reason was seen."""
        if self.done or not self._finished or self._chunks is None:
            return []
        self.done = True
        if self._usage is None:  # no usage reported: say nothing rather than a priced-looking zero
            return [DONE]
        return [data_event(self._chunks.usage_chunk(map_usage(self._usage))), DONE]

    def _start(self, obj: dict[str, Any]) -> list[bytes]:
        if self._chunks is not None:
            return []
        cid = obj.get("responseId") or "gemini-" + cs.new_call_id()[5:]
        self._chunks = cs.ChunkMaker(cid, int(time.time()), obj.get("modelVersion") or self._model)
        return [data_event(self._chunks.chunk({"role": "assistant", "content": ""}))]

    def _candidate(self, candidate: dict[str, Any]) -> list[bytes]:
        assert self._chunks is not None
        error = broken_answer(candidate)
        if error:
            return self._fail(
                {"message": error.message, "type": error.type, "param": None, "code": error.code}
            )
        parts = read_parts((candidate.get("content") or {}).get("parts"))
        out = []
        delta: dict[str, Any] = {}
        if parts.reasoning:
            delta["reasoning_content"] = parts.reasoning
        if parts.text:
            delta["content"] = parts.text
        if parts.signature:
            delta["extra_content"] = {"google": {"thought_signature": parts.signature}}
        if delta:
            out.append(data_event(self._chunks.chunk(delta)))
        for call in parts.calls:
            # Gemini sends each function call whole, so one delta carries its name and every argument byte.
            out.append(data_event(self._chunks.chunk({"tool_calls": [{"index": self._tool_count, **call}]})))
            self._tool_count += 1
        reason = finish_reason(candidate.get("finishReason"), self._tool_count > 0)
        if reason:
            self._finished = True
            out.append(data_event(self._chunks.chunk({}, reason)))
        return out

    def _fail(self, err: dict[str, Any]) -> list[bytes]:
        self.done = True
        return [data_event({"error": err})]
