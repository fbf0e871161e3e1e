"""A minimal, fast OpenAI-compatible upstream for benchmarks (canned answers, HTTP/1.1 keep-alive).

Usage: python bench/fast_upstream.py PORT
Non-stream requests get a chat.completion; `"stream": true` gets 8 chunks + usage + [DONE] in one write,
chunked-encoded, so the time measured is the proxy's, not this server's.
"""

from __future__ import annotations

import orjson
from raw_upstream import RawUpstream, main

_COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "benchmark reply " * 8},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 42,
            "completion_tokens": 24,
            "total_tokens": 66,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }
)


def _chunk(delta: dict, finish: str | None = None) -> bytes:
    obj = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(obj) + b"\n\n"


_EVENTS = (
    [_chunk({"role": "assistant", "content": ""})]
    + [_chunk({"content": f"word{i} "}) for i in range(8)]
    + [
        _chunk({}, "stop"),
        b"data: "
        + orjson.dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": "bench",
                "choices": [],
                "usage": {"prompt_tokens": 42, "completion_tokens": 8, "total_tokens": 50},
            }
        )
        + b"\n\n",
        b"data: [DONE]\n\n",
    ]
)
_STREAM_BODY = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in _EVENTS) + b"0\r\n\r\n"

RESP_JSON = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-request-id: req_bench\r\n"
    b"Content-Length: %d\r\n\r\n" % len(_COMPLETION)
) + _COMPLETION
RESP_SSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + _STREAM_BODY
)


class Upstream(RawUpstream):
    def on_request(self, path: bytes, body: bytes, stream: bool) -> None:
        self.write(RESP_SSE if stream else RESP_JSON)


if __name__ == "__main__":
    main(Upstream)
