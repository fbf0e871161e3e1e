"""A loopback OpenAI-compatible upstream that only fails: what `--live` uses to prove failures are never stored.

Model `csb-error`: HTTP 500 with an OpenAI error body. Model `csb-cut`: a stream that sends two chunks and
closes without a finish_reason or [DONE]; non-stream, a 200 whose JSON body is cut in the middle.
"""

from __future__ import annotations

import orjson
from aiohttp import web

ERROR_MODEL = "csb-error"
CUT_MODEL = "csb-cut"


def _chunk(text: str) -> bytes:
    obj = {
        "id": "chatcmpl-csb-cut",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": CUT_MODEL,
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def _chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if body.get("model") == ERROR_MODEL:
        error = {"error": {"message": "csb: upstream failure", "type": "server_error", "code": None}}
        return web.json_response(error, status=500)
    if body.get("stream"):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(_chunk("The answer is"))
        await resp.write(_chunk(" cut"))
        # Drop the connection mid-stream: no finish_reason, no [DONE].
        if request.transport is not None:
            request.transport.close()
        return resp
    whole = orjson.dumps({"id": "chatcmpl-csb-cut", "object": "chat.completion", "choices": []})
    return web.Response(body=whole[: len(whole) // 2], content_type="application/json")


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _chat)
    return app
