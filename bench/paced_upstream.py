"""The `make bench` upstream: canned answers, streams paced like a model (issue 16).

Usage: python bench/paced_upstream.py PORT
- chat non-stream: a `chat.completion` at once; if the body names a model containing `slow`, after 100 ms;
- chat `"stream": true`: headers and the first event after 10 ms, then 20 more events 5 ms apart (the last
  carries finish_reason, then the usage chunk and `[DONE]`), chunked-encoded: about 110 ms per stream;
- chat `"stream": true` with `hold` in the body (bench/open_streams.py): the first event after 10 ms, then one
  event every 5 s, 12 in all, then the end: a stream held open about a minute (the client hangs up first);
- `/v1/responses` and `/v1/messages`: the canned answers of endpoints_upstream.py (one write).
Raw asyncio protocol (uvloop when installed), HTTP/1.1 keep-alive, no pipelining; loopback only.
"""

from __future__ import annotations

import asyncio

import orjson
from endpoints_upstream import ANSWERS
from fast_upstream import RESP_JSON, _chunk
from raw_upstream import RawUpstream, main

FIRST_EVENT_S = 0.010
EVENT_GAP_S = 0.005
EVENTS_AFTER_FIRST = 20
SLOW_S = 0.100
HOLD_GAP_S = 5.0


def _framed(*events: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)


_USAGE = (
    b"data: "
    + orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "bench",
            "choices": [],
            "usage": {"prompt_tokens": 42, "completion_tokens": 20, "total_tokens": 62},
        }
    )
    + b"\n\n"
)

# writes[0] at 10 ms (with the headers), writes[i] at 10 + 5*i ms; 21 writes in all
WRITES = (
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        + _framed(_chunk({"role": "assistant", "content": ""}))
    ]
    + [_framed(_chunk({"content": f"word{i} "})) for i in range(1, EVENTS_AFTER_FIRST)]
    + [_framed(_chunk({}, "stop"), _USAGE, b"data: [DONE]\n\n") + b"0\r\n\r\n"]
)
assert len(WRITES) == EVENTS_AFTER_FIRST + 1


class Upstream(RawUpstream):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.get_running_loop()

    def _stream_step(self, i: int) -> None:
        self.write(WRITES[i])
        if i + 1 < len(WRITES) and self.transport is not None:
            self.loop.call_later(EVENT_GAP_S, self._stream_step, i + 1)

    def _hold_step(self, i: int) -> None:
        """A held stream: WRITES[0..11] 5 s apart, then the end (the last write); stops if the proxy hangs up."""
        if self.transport is None:
            return  # the proxy hung up: stop
        if i >= 12:
            self.write(WRITES[-1])
            return
        self.write(WRITES[i])
        self.loop.call_later(HOLD_GAP_S, self._hold_step, i + 1)

    def on_request(self, path: bytes, body: bytes, stream: bool) -> None:
        if path != b"/v1/chat/completions":
            plain, sse = ANSWERS.get(path, ANSWERS[b"/v1/chat/completions"])
            self.write(sse if stream else plain)
        elif stream and b"hold" in body:
            self.loop.call_later(FIRST_EVENT_S, self._hold_step, 0)
        elif stream:
            self.loop.call_later(FIRST_EVENT_S, self._stream_step, 0)
        elif b"slow" in body:
            self.loop.call_later(SLOW_S, self.write, RESP_JSON)
        else:
            self.write(RESP_JSON)


if __name__ == "__main__":
    main(Upstream, backlog=4096)
