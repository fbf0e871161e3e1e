"""A hostile upstream for size caps: answers far larger than any real one, and a line that never ends.

  huge-json     a non-stream answer of `size` bytes (Content-Length known)
  huge-chunked  the same without Content-Length
  huge-stream   a valid stream whose events add up to `size` bytes
  long-line     one stream event `data: xxxx…` of `size` bytes with no newline, then silence
State counts how many answers were cut off by the client (the proxy) before they were all written.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson
from aiohttp import web

STATE = web.AppKey("hostile_state", "HostileState")
PIECE = 64 * 1024


@dataclass
class HostileState:
    size: int = 10 * 1024 * 1024
    cut_off: int = 0
    finished: int = 0


def _chunk(i: int, text: str) -> bytes:
    obj = {
        "id": "chatcmpl-hostile",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "hostile",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _completion(size: int) -> bytes:
    head = b'{"id":"chatcmpl-hostile","object":"chat.completion","created":1,"model":"hostile","choices":[{"index":0,"message":{"role":"assistant","content":"'
    tail = b'"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}'
    return head + b"x" * max(0, size - len(head) - len(tail)) + tail


async def chat(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await request.json()
    model = body.get("model", "")
    if model == "huge-json":
        return web.Response(body=_completion(state.size), content_type="application/json")
    resp = web.StreamResponse()
    resp.content_type = "application/json" if model == "huge-chunked" else "text/event-stream"
    await resp.prepare(request)
    try:
        if model == "huge-chunked":
            data = _completion(state.size)
            for i in range(0, len(data), PIECE):
                await resp.write(data[i : i + PIECE])
        elif model == "long-line":
            await resp.write(_chunk(0, "hello"))
            await resp.write(b"data: ")
            for _ in range(state.size // PIECE):
                await resp.write(b"x" * PIECE)
            await asyncio.sleep(30)
        else:
            sent, i = 0, 0
            while sent < state.size:
                event = _chunk(i, "y" * 4000)
                await resp.write(event)
                sent += len(event)
                i += 1
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        state.finished += 1
    except (ConnectionError, asyncio.CancelledError):
        state.cut_off += 1
        raise
    return resp


def create_hostile_app(state: HostileState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app.router.add_post("/v1/chat/completions", chat)
    return app
