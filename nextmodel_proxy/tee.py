"""Watches OpenAI-format events as they pass: usage, finish reasons, completeness, and the cache payload."""

from __future__ import annotations

import re
from typing import Any

import orjson

from nextmodel_proxy.sse import DONE, event_json

# One cheap byte probe per event (issue 16: one regex pass instead of five substring scans and a second
# regex): only events that may carry a finish reason, usage or an error are JSON-parsed.
_PROBE = re.compile(rb'"finish_reason":\s*"|"usage":\s*\{|"error"|"index":\s*[1-9]')
# An index above 0 (a second choice, or a later tool call): worth parsing to learn the choice indexes.
_LATER_INDEX = re.compile(rb'"index":\s*[1-9]')


class StreamTee:
    """Observes one stream's events in order; never changes or delays them."""

    __slots__ = (
        "events",
        "usage",
        "finish_reasons",
        "done",
        "error",
        "collect",
        "response_id",
        "model",
        "service_tier",
        "choices_seen",
        "_n",
    )

    def __init__(self, *, collect: bool) -> None:
        self.collect = collect
        self.events: list[bytes] = []
        self.usage: dict[str, Any] | None = None
        self.finish_reasons: dict[int, str] = {}
        self.done = False
        self.error: dict[str, Any] | None = None
        self.response_id: str | None = None
        self.model: str | None = None
        self.service_tier: str | None = None  # as the upstream reported it (top level, or inside usage)
        self.choices_seen: set[int] = set()  # filled once a choice index above 0 shows up (n > 1)
        self._n = 0

    @staticmethod
    def may_start_final(raw: bytes) -> bool:
        """Whether the event can begin a stream's final group (a usage-only chunk or [DONE]): a caller that only
        looks for where that group starts may skip observing any other event."""
        return b"[DONE]" in raw or b'"usage"' in raw

    def observe(self, raw: bytes) -> bool:
        """Record one event; True when it is a usage-only chunk (`choices: []` with usage)."""
        self._n += 1
        if self.collect:
            self.events.append(raw)
        if raw == DONE or raw.startswith(b"data: [DONE]"):
            self.done = True
            return False
        if self._n <= 2 and self.response_id is None:
            self._note_ids(raw)
        interesting = _PROBE.search(raw) is not None  # a later index also matches _PROBE
        if self.choices_seen or (interesting and _LATER_INDEX.search(raw)):
            self._note_choices(raw)
        if not interesting:
            return False  # the usual content delta: nothing more to learn
        obj = event_json(raw)
        if obj is None:
            return False
        if isinstance(obj.get("error"), dict):
            self.error = obj["error"]
            return False
        choices = obj.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict) and choice.get("finish_reason"):
                    self.finish_reasons[int(choice.get("index", 0))] = choice["finish_reason"]
        usage = obj.get("usage")
        tier = obj.get("service_tier")
        if not isinstance(tier, str) and isinstance(usage, dict):
            tier = usage.get("service_tier")
        if isinstance(tier, str) and tier:
            self.service_tier = tier
        if isinstance(usage, dict):
            self.usage = usage
            return choices == []
        return False

    def _note_choices(self, raw: bytes) -> None:
        """Which choice indexes appear. Only parsed once an index above 0 is in sight, so a one-choice
        stream pays nothing; with n > 1, choice 0 exists from the first chunk, so it is counted too."""
        obj = event_json(raw)
        choices = obj.get("choices") if obj else None
        indexes = (
            {c.get("index", 0) for c in choices if isinstance(c, dict)} if isinstance(choices, list) else ()
        )
        indexes = {i for i in indexes if isinstance(i, int) and not isinstance(i, bool)}
        if self.choices_seen or any(i > 0 for i in indexes):
            self.choices_seen |= indexes | {0}

    def _note_ids(self, raw: bytes) -> None:
        obj = event_json(raw)
        if obj:
            self.response_id = obj.get("id") if isinstance(obj.get("id"), str) else None
            self.model = obj.get("model") if isinstance(obj.get("model"), str) else None

    def content_chars(self) -> int:
        """Characters of generated text and tool-call arguments in the collected events (for estimates)."""
        total = 0
        for raw in self.events:
            obj = event_json(raw)
            for choice in (obj or {}).get("choices") or []:
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if isinstance(delta, dict):
                    total += len(delta.get("content") or "") if isinstance(delta.get("content"), str) else 0
                    for call in delta.get("tool_calls") or []:
                        total += len(str((call.get("function") or {}).get("arguments") or ""))
        return total

    @property
    def complete(self) -> bool:
        """Ended with [DONE], no error event, and every choice index that appeared has a finish reason."""
        if not (self.done and self.error is None and self.finish_reasons):
            return False
        return all(index in self.finish_reasons for index in self.choices_seen)


def completion_facts(body: bytes) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(parsed object, usage) of a non-stream JSON answer; (None, None) when it is not a JSON object."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    usage = obj.get("usage")
    return obj, usage if isinstance(usage, dict) else None
