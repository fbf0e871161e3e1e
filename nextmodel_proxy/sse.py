"""Incremental SSE splitter and encoder (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"


class SSESplitter:
    """Feed raw bytes, get back complete events as raw bytes (each ending with a blank line).

    Accepts \\n, \\r\\n and \\r line endings; an event is complete at the first empty line.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf + data if self._buf else data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events = []
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            events.append(buf[start : end + 2])
            start = end + 2
        self._buf = buf[start:]
        return events

    def tail(self) -> bytes:
        """Bytes received after the last complete event (a stream cut mid-event leaves these)."""
        return self._buf


@dataclass(frozen=True, slots=True)
class Event:
    event: str | None
    data: str | None  # joined data lines; None when the event had none (a comment)


def parse_event(raw: bytes) -> Event:
    """Field-parse one raw event (per the WHATWG EventSource rules we need: event and data)."""
    name = None
    data_lines: list[str] = []
    for line in raw.decode("utf-8", "replace").split("\n"):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data_lines.append(value)
        elif field == "event":
            name = value
    return Event(name, "\n".join(data_lines) if data_lines else None)


def data_event(obj: object) -> bytes:
    """An SSE event carrying one JSON object."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def named_event(name: str, obj: object) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def event_json(raw: bytes) -> dict | None:
    """The JSON object in a `data:` event, or None for [DONE], comments and non-JSON data."""
    if raw.startswith(b"data: {") and raw.count(b"\ndata:") == 0:
        try:
            obj = orjson.loads(raw[6:])
        except orjson.JSONDecodeError:
            return None
        return obj if isinstance(obj, dict) else None
    ev = parse_event(raw)
    if ev.data is None or ev.data == "[DONE]":
        return None
    try:
        obj = orjson.loads(ev.data)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def is_done(raw: bytes) -> bool:
    return raw == DONE or raw.rstrip() == b"data: [DONE]" or parse_event(raw).data == "[DONE]"
