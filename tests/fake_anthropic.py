"""A fake Anthropic Messages API serving the recorded fixtures; the scenario comes from the model name.

Model name endings: -tools (text + two tool_use blocks, cache usage), -error (400 invalid_request_error),
-overloaded (529 overloaded_error), -midstream-error (stream cut by an `error` event), -truncated (stream
closed cleanly before it finished), -cachettl (cache writes split into 5-minute and 1-hour parts, as
usage.cache_creation reports them), -echo (the received
Messages request as the answer text); anything else answers "Hi! My name is Claude." / streams "Hello!".
A model name containing -same streams the very message it answers without streaming (built from it), so a
client can compare the two.
POST /v1/messages/count_tokens answers {"input_tokens": 7 + len(JSON of system, messages, tools) // 5}.
Requests without x-api-key get 401, without an anthropic-version of 2023-06-01 or a later YYYY-MM-DD date
(newer SDKs send newer versions) get 400.
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson
from aiohttp import web

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
ANTHROPIC_REQUESTS = web.AppKey("anthropic_requests", list)
CHUNK = 37  # odd-sized writes so events straddle network reads


def add_routes(app: web.Application) -> None:
    """Mount POST /v1/messages; requests land in app[ANTHROPIC_REQUESTS] as (headers, body)."""
    app[ANTHROPIC_REQUESTS] = []
    app.router.add_post("/v1/messages", _messages)
    app.router.add_post("/v1/messages/count_tokens", _count_tokens)


async def _count_tokens(request: web.Request) -> web.Response:
    """POST /v1/messages/count_tokens: {"input_tokens": N}, N a deterministic function of the body."""
    body = orjson.loads(await request.read())
    request.app[ANTHROPIC_REQUESTS].append((dict(request.headers), body))
    if not request.headers.get("x-api-key"):
        return _error(401, "error_invalid_request.json")
    fields = {k: body.get(k) for k in ("system", "messages", "tools")}
    return web.json_response({"input_tokens": 7 + len(orjson.dumps(fields)) // 5})


def _known_version(value: str | None) -> bool:
    return bool(value and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) and value >= "2023-06-01")


def _error(status: int, name: str) -> web.Response:
    return web.Response(
        status=status,
        body=(FIXTURES / name).read_bytes(),
        content_type="application/json",
        headers={"request-id": "req_fake_error"},
    )


async def _messages(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    request.app[ANTHROPIC_REQUESTS].append((dict(request.headers), body))
    if not request.headers.get("x-api-key"):
        return web.json_response(
            {
                "type": "error",
                "error": {"type": "authentication_error", "message": "x-api-key header is required"},
            },
            status=401,
        )
    if not _known_version(request.headers.get("anthropic-version")):
        return _error(400, "error_invalid_request.json")
    model = body.get("model", "")
    stream = bool(body.get("stream"))
    if model.endswith("-midstream-error"):
        return (
            await _sse(request, "stream_midstream_error.sse")
            if stream
            else _error(529, "error_overloaded.json")
        )
    if model.endswith("-truncated") and stream:  # a clean close before message_delta / message_stop
        data = (FIXTURES / "stream_text.sse").read_bytes()
        return await _send(request, data[: data.index(b"event: content_block_stop")])
    if model.endswith("-overloaded"):
        return _error(529, "error_overloaded.json")
    if model.endswith("-error"):
        return _error(400, "error_invalid_request.json")
    if model.endswith("-echo"):
        text = orjson.dumps(body).decode()
        return web.json_response(
            {
                "id": "msg_echo",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 1, "output_tokens": 1},
            }
        )
    tools = model.endswith("-tools")
    name = "message_tools_cache.json" if tools else "message_text.json"
    if model.endswith("-cachettl"):
        name = "message_cache_ttl.json"
        if stream:
            return await _send(request, _stream_of(orjson.loads((FIXTURES / name).read_bytes())))
    if stream and "-same" in model:
        return await _send(request, _stream_of(orjson.loads((FIXTURES / name).read_bytes())))
    if stream:
        return await _sse(request, "stream_tools.sse" if tools else "stream_text.sse")
    return web.Response(
        body=(FIXTURES / name).read_bytes(),
        content_type="application/json",
        headers={"request-id": "req_fake_ok"},
    )


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _stream_of(msg: dict) -> bytes:
    """The event stream that builds `msg`: text in 5-character deltas, tool input JSON in 7-character fragments."""
    events: list[dict] = [
        {
            "type": "message_start",
            "message": {
                **msg,
                "content": [],
                "stop_reason": None,
                "usage": {**msg["usage"], "output_tokens": 1},
            },
        }
    ]
    for i, block in enumerate(msg["content"]):
        if block["type"] == "text":
            events.append(
                {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}
            )
            events += [
                {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": p}}
                for p in _pieces(block["text"], 5)
            ]
        else:
            events.append(
                {"type": "content_block_start", "index": i, "content_block": {**block, "input": {}}}
            )
            events += [
                {
                    "type": "content_block_delta",
                    "index": i,
                    "delta": {"type": "input_json_delta", "partial_json": p},
                }
                for p in _pieces(orjson.dumps(block["input"]).decode(), 7)
            ]
        events.append({"type": "content_block_stop", "index": i})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": msg["usage"]["output_tokens"]},
        }
    )
    events.append({"type": "message_stop"})
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)


async def _sse(request: web.Request, name: str) -> web.StreamResponse:
    return await _send(request, (FIXTURES / name).read_bytes())


async def _send(request: web.Request, data: bytes) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "request-id": "req_fake_stream"})
    await resp.prepare(request)
    for start in range(0, len(data), CHUNK):
        await resp.write(data[start : start + CHUNK])
    await resp.write_eof()
    return resp
