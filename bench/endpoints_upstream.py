"""A fast upstream answering chat, Responses and Messages with canned bodies chosen by the request path.

Usage: python bench/endpoints_upstream.py PORT. Same framing as fast_upstream.py (one write per answer).
"""

from __future__ import annotations

import orjson
from fast_upstream import RESP_JSON, RESP_SSE
from raw_upstream import RawUpstream, main


def _named(kind: str, obj: dict) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def _http_json(body: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-request-id: req_bench\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body


def _http_sse(events: list[bytes]) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + body


TEXT = "benchmark reply " * 8
USAGE = {
    "input_tokens": 42,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 24,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 66,
}
MESSAGE = {
    "id": "msg_fake",
    "type": "message",
    "status": "completed",
    "role": "assistant",
    "content": [{"type": "output_text", "text": TEXT, "annotations": []}],
}
RESPONSE = {
    "id": "resp_bench",
    "object": "response",
    "created_at": 1700000000,
    "status": "completed",
    "model": "bench",
    "output": [MESSAGE],
    "usage": USAGE,
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
}


def _responses_events() -> list[bytes]:
    start = {**RESPONSE, "status": "in_progress", "output": [], "usage": None}
    events = [
        _named("response.created", {"type": "response.created", "response": start, "sequence_number": 0})
    ]
    for i in range(8):
        events.append(
            _named(
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "item_id": "msg_fake",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": f"word{i} ",
                    "sequence_number": i + 1,
                },
            )
        )
    events.append(
        _named(
            "response.completed", {"type": "response.completed", "response": RESPONSE, "sequence_number": 9}
        )
    )
    return events


ANTHROPIC = {
    "id": "msg_bench",
    "type": "message",
    "role": "assistant",
    "model": "bench",
    "content": [{"type": "text", "text": TEXT}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 42, "output_tokens": 24},
}


def _messages_events() -> list[bytes]:
    start = {
        **ANTHROPIC,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 42, "output_tokens": 1},
    }
    events = [
        _named("message_start", {"type": "message_start", "message": start}),
        _named(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
    ]
    for i in range(8):
        events.append(
            _named(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": f"word{i} "},
                },
            )
        )
    events += [
        _named("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _named(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 8},
            },
        ),
        _named("message_stop", {"type": "message_stop"}),
    ]
    return events


ANSWERS = {
    b"/v1/chat/completions": (RESP_JSON, RESP_SSE),
    b"/v1/responses": (_http_json(orjson.dumps(RESPONSE)), _http_sse(_responses_events())),
    b"/v1/messages": (_http_json(orjson.dumps(ANTHROPIC)), _http_sse(_messages_events())),
}


class Upstream(RawUpstream):
    def on_request(self, path: bytes, body: bytes, stream: bool) -> None:
        plain, sse = ANSWERS.get(path, ANSWERS[b"/v1/chat/completions"])
        self.write(sse if stream else plain)


if __name__ == "__main__":
    main(Upstream)
