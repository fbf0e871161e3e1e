"""A fake Gemini API (v1beta generateContent / streamGenerateContent) serving the recorded fixtures.

Model name endings: -tools (two functionCall parts, the first with a thoughtSignature), -malformed
(finishReason MALFORMED_FUNCTION_CALL), -error (400 INVALID_ARGUMENT), -midstream-error (one text event,
then an error event), -truncated (one text event, then a clean close without a finishReason), -echo (the received request as the answer text); anything else answers text with
cached and thought tokens in usageMetadata. Requests without x-goog-api-key get 400. A model name
containing -same streams the very response it answers without streaming (built from it).
"""

from __future__ import annotations

from pathlib import Path

import orjson
from aiohttp import web

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"
GEMINI_REQUESTS = web.AppKey("gemini_requests", list)
CHUNK = 41  # odd-sized writes so events straddle network reads
# Not in the public docs as an example: how a failure after the first event reaches an alt=sse client.
MIDSTREAM_ERROR = {
    "error": {
        "code": 503,
        "message": "The model is overloaded. Please try again later.",
        "status": "UNAVAILABLE",
    }
}


def add_routes(app: web.Application) -> None:
    """Mount /v1beta/models/{model}:generateContent and :streamGenerateContent; requests land in
    app[GEMINI_REQUESTS] as (headers, query, model, body)."""
    app[GEMINI_REQUESTS] = []
    app.router.add_post("/v1beta/models/{target}", _dispatch)


async def _dispatch(request: web.Request) -> web.StreamResponse:
    model, _, action = request.match_info["target"].rpartition(":")
    body = orjson.loads(await request.read())
    request.app[GEMINI_REQUESTS].append((dict(request.headers), dict(request.query), model, body))
    if action not in ("generateContent", "streamGenerateContent"):
        return web.json_response(
            {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}, status=404
        )
    if not request.headers.get("x-goog-api-key"):
        return _file(400, "error_invalid_argument.json")
    stream = action == "streamGenerateContent"
    if model.endswith("-error") and not model.endswith("-midstream-error"):
        return _file(400, "error_invalid_argument.json")
    if model.endswith("-echo"):
        return web.json_response(
            {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": orjson.dumps(body).decode()}]},
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
                "modelVersion": model,
                "responseId": "echo",
            }
        )
    whole = {"-tools": "response_function_calls.json", "-malformed": "response_malformed.json"}
    whole_name = next((v for k, v in whole.items() if model.endswith(k)), "response_text.json")
    if not stream:
        return _file(200, whole_name)
    if "-same" in model:
        return await _sse(request, _stream_of(orjson.loads((FIXTURES / whole_name).read_bytes())))
    first = (FIXTURES / "stream_text.sse").read_bytes().split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    if model.endswith("-midstream-error"):
        return await _sse(request, first + b"data: " + orjson.dumps(MIDSTREAM_ERROR) + b"\r\n\r\n")
    if model.endswith("-truncated"):  # a clean close before any finishReason
        return await _sse(request, first)
    name = {"-tools": "stream_tools.sse", "-malformed": "stream_malformed.sse"}
    chosen = next((v for k, v in name.items() if model.endswith(k)), "stream_text.sse")
    return await _sse(request, (FIXTURES / chosen).read_bytes())


def _stream_of(response: dict) -> bytes:
    """alt=sse events that build `response`: its text in 6-character pieces (a text part's thoughtSignature on
    the first), then one event with the function calls, the finish reason and the usage."""
    candidate = response["candidates"][0]
    events, calls = [], []
    for part in candidate["content"].get("parts", []):
        if "functionCall" in part:
            calls.append(part)
            continue
        for k in range(0, len(part["text"]), 6):
            piece = {"text": part["text"][k : k + 6]}
            if k == 0 and "thoughtSignature" in part:
                piece["thoughtSignature"] = part["thoughtSignature"]
            events.append({"candidates": [{"content": {"role": "model", "parts": [piece]}, "index": 0}]})
    last = {**candidate, "content": {"role": "model", "parts": calls or [{"text": ""}]}}
    events.append({"candidates": [last], "usageMetadata": response["usageMetadata"]})
    meta = {"modelVersion": response["modelVersion"], "responseId": response["responseId"]}
    return b"".join(b"data: " + orjson.dumps({**e, **meta}) + b"\r\n\r\n" for e in events)


def _file(status: int, name: str) -> web.Response:
    return web.Response(
        status=status,
        body=(FIXTURES / name).read_bytes(),
        content_type="application/json",
        headers={"x-goog-request-id": "goog-fake"},
    )


async def _sse(request: web.Request, data: bytes) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "x-goog-request-id": "goog-fake"})
    await resp.prepare(request)
    for start in range(0, len(data), CHUNK):
        await resp.write(data[start : start + CHUNK])
    await resp.write_eof()
    return resp
