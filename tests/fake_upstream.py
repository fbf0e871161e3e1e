"""A fake OpenAI-compatible upstream server speaking the documented wire format.

The scenario comes from the model name (substring match), so one server serves every test:
  *tools*      two tool calls, arguments split across deltas
  *text-tool*  text content followed by one tool call
  *json*       a JSON object as content
  *flaky*      the first request per model fails (500, or 429 with Retry-After 0.05 for *flaky-429*)
  *error-429*  429 with an OpenAI error body and Retry-After: 1
  *error-500*  500 with an OpenAI error body
  *error-400*  400 invalid_request_error
  *slow*       0.2 s between stream chunks
  *silent*     one chunk, then `silent_s` of silence, then the rest
  *broken*     a stream cut after two chunks (no finish, no [DONE])
  *hang*       no answer for `hang_s`
  (state.fail_next > 0: the next requests answer 500, after any *hang* wait, whatever the model)
  *nousage*    no usage anywhere
  *filter*     finish_reason content_filter
  *deepseek*   DeepSeek-style usage (prompt_cache_hit_tokens / miss)
  (a request's metadata.fake_usage, a JSON object as text, is the usage reported instead of the computed one,
   and metadata.fake_service_tier the top-level service_tier reported: for billing tests that need a
   300K-token prompt or a priority tier without sending one)
otherwise a plain text answer whose words come from the last user message.
The same app also serves the native Anthropic (/v1/messages, fake_anthropic.py) and Gemini
(/v1beta/models/..., fake_gemini.py) APIs, and OpenAI's /v1/responses and /v1/completions (fake_openai_extra.py), so `kind: anthropic` and `kind: gemini` providers can point at it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from fake_anthropic import add_routes as add_anthropic_routes
from fake_gemini import add_routes as add_gemini_routes
from fake_openai_extra import add_routes as add_extra_routes

STATE = web.AppKey("state", "FakeState")


@dataclass
class FakeState:
    calls: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    silent_s: float = 1.0
    hang_s: float = 5.0
    cancelled: int = 0
    flaky_failures: dict[str, int] = field(default_factory=dict)  # model -> failures still to serve
    record: bool = True
    cut_after: int | None = None  # every stream is cut after this many events (like *broken*)
    fail_next: int = 0  # the next N chat requests answer 500 (after any *hang* wait), whatever the model
    # Hostile-upstream knobs: usage_hook(usage, body) -> the usage object actually sent (chat, both forms);
    # extra_headers are added to every chat answer (values may be bytes, sent as they are).
    usage_hook: Any = None
    extra_headers: dict[str, Any] = field(default_factory=dict)
    # An asyncio.Event: streams send their headers, then hold the first event until it is set (at most 10 s).
    first_event_gate: Any = None


def _usage(prompt: int, completion: int, cached: int = 0, deepseek: bool = False) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    if deepseek:
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_cache_hit_tokens": cached,
            "prompt_cache_miss_tokens": prompt - cached,
        }
    return usage


def _last_user_text(body: dict[str, Any]) -> str:
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content)
    return ""


TOOL_CALLS = [
    {"id": "call_abc123", "name": "get_weather", "arguments": '{"city": "Hà Nội", "unit": "celsius"}'},
    {"id": "call_def456", "name": "get_time", "arguments": '{"tz": "Asia/Kolkata", "fmt": "24h\\u00b0"}'},
]


def _answer(model: str, body: dict[str, Any]) -> dict[str, Any]:
    """What the model 'says': content, tool calls, finish reason, usage numbers."""
    text = _last_user_text(body)
    if "text-tool" in model:
        return {"content": "Let me check that.", "tool_calls": TOOL_CALLS[:1], "finish": "tool_calls"}
    if "tools" in model:
        return {"content": None, "tool_calls": TOOL_CALLS, "finish": "tool_calls"}
    if "json" in model:
        return {"content": orjson.dumps({"answer": text[:40], "ok": True}).decode(), "finish": "stop"}
    if "filter" in model:
        return {"content": "", "finish": "content_filter"}
    words = text.split() or ["empty"]
    return {"content": "Echo: " + " ".join(words[:50]), "finish": "stop"}


def _completion(model: str, body: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer["content"], "refusal": None}
    if answer.get("tool_calls"):
        message["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in answer["tool_calls"]
        ]
    obj: dict[str, Any] = {
        "id": "chatcmpl-fake123",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": answer["finish"]}],
    }
    if "nousage" not in model:
        obj["usage"] = _scripted_or(
            body, lambda: _usage(*_token_counts(body, answer), deepseek="deepseek" in model)
        )
    return _with_service_tier(obj, body)


def _metadata(body: dict[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _scripted_usage(body: dict[str, Any]) -> dict[str, Any] | None:
    text = _metadata(body).get("fake_usage")
    return orjson.loads(text) if isinstance(text, str) else None


def _scripted_or(body: dict[str, Any], computed: Any) -> Any:
    scripted = _scripted_usage(body)
    return computed() if scripted is None else scripted


def _with_service_tier(obj: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    tier = _metadata(body).get("fake_service_tier")
    if isinstance(tier, str):
        obj["service_tier"] = tier
    return obj


def _hooked(state: FakeState, obj: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    if state.usage_hook is not None and "usage" in obj:
        obj["usage"] = state.usage_hook(obj["usage"], body)
    return obj


def _token_counts(body: dict[str, Any], answer: dict[str, Any]) -> tuple[int, int, int]:
    prompt = 9 + sum(
        len(str(m.get("content", ""))) // 4 for m in body.get("messages") or [] if isinstance(m, dict)
    )
    completion = 1 + len(answer.get("content") or "") // 4 + 12 * len(answer.get("tool_calls") or [])
    cached = 8 if "cached" in str(body.get("model")) or "deepseek" in str(body.get("model")) else 0
    return prompt, completion, min(cached, prompt)


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    obj = {
        "id": "chatcmpl-fake123",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _stream_events(
    model: str, body: dict[str, Any], answer: dict[str, Any], state: FakeState | None = None
) -> list[bytes]:
    events = [_chunk(model, {"role": "assistant", "content": "", "refusal": None})]
    content = answer.get("content") or ""
    for i in range(0, len(content), 7):
        events.append(_chunk(model, {"content": content[i : i + 7]}))
    for idx, call in enumerate(answer.get("tool_calls") or []):
        events.append(
            _chunk(
                model,
                {
                    "tool_calls": [
                        {
                            "index": idx,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["name"], "arguments": ""},
                        }
                    ]
                },
            )
        )
        args = call["arguments"]
        for i in range(0, len(args), 5):
            events.append(
                _chunk(model, {"tool_calls": [{"index": idx, "function": {"arguments": args[i : i + 5]}}]})
            )
    events.append(_chunk(model, {}, answer["finish"]))
    opts = body.get("stream_options") or {}
    if opts.get("include_usage") and "nousage" not in model:
        usage = _scripted_or(body, lambda: _usage(*_token_counts(body, answer), deepseek="deepseek" in model))
        obj = {
            "id": "chatcmpl-fake123",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [],
            "usage": usage,
        }
        _with_service_tier(obj, body)
        if state is not None:
            _hooked(state, obj, body)
        events.append(b"data: " + orjson.dumps(obj) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def _error(
    status: int, message: str, type_: str, code: str | None, headers: dict | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


async def chat(request: web.Request) -> web.StreamResponse:
    state: FakeState = request.app[STATE]
    body = orjson.loads(await request.read())
    state.calls += 1
    if state.record:
        state.requests.append(body)
        state.headers.append(dict(request.headers))
    model = str(body.get("model", ""))
    if "hang" in model:
        await asyncio.sleep(state.hang_s)
    if state.fail_next > 0:
        state.fail_next -= 1
        return _error(500, "The server had an error while processing your request.", "server_error", None)
    if "flaky" in model and state.flaky_failures.setdefault(model, 1) > 0:
        state.flaky_failures[model] -= 1
        if "429" in model:
            return _error(429, "Slow down", "requests", "rate_limit_exceeded", {"Retry-After": "0.05"})
        return _error(500, "The server had an error while processing your request.", "server_error", None)
    if "error-429" in model:
        return _error(
            429, "Rate limit reached for requests", "requests", "rate_limit_exceeded", {"Retry-After": "1"}
        )
    if "error-500" in model:
        return _error(500, "The server had an error while processing your request.", "server_error", None)
    if "error-400" in model:
        return _error(400, "Invalid value for 'temperature'.", "invalid_request_error", "invalid_value")
    answer = _answer(model, body)
    headers = {"x-request-id": f"req_fake_{state.calls}", **state.extra_headers}
    if not body.get("stream"):
        return web.Response(
            body=orjson.dumps(_hooked(state, _completion(model, body, answer), body)),
            content_type="application/json",
            headers=headers,
        )
    return await _stream(request, state, model, body, answer, headers)


async def _stream(
    request: web.Request,
    state: FakeState,
    model: str,
    body: dict[str, Any],
    answer: dict[str, Any],
    headers: dict[str, str],
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", **headers})
    await resp.prepare(request)
    events = _stream_events(model, body, answer, state)
    try:
        for i, event in enumerate(events):
            if i == 0 and state.first_event_gate is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(state.first_event_gate.wait(), 10)
            if ("broken" in model and i == 3) or i == state.cut_after:
                request.transport.close() if request.transport else None
                return resp
            await resp.write(event)
            if "slow" in model:
                await asyncio.sleep(0.2)
            if "silent" in model and i == 0:
                await asyncio.sleep(state.silent_s)
    except asyncio.CancelledError:
        state.cancelled += 1
        raise
    await resp.write_eof()
    return resp


async def embeddings(request: web.Request) -> web.Response:
    state: FakeState = request.app[STATE]
    body = orjson.loads(await request.read())
    state.calls += 1
    state.requests.append(body)
    state.headers.append(dict(request.headers))
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = [
        {"object": "embedding", "index": i, "embedding": [0.001 * (i + 1), -0.002, 0.5]}
        for i in range(len(inputs))
    ]
    tokens = sum(max(1, len(str(x)) // 4) for x in inputs)
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def create_fake_app(state: FakeState | None = None) -> web.Application:
    app = web.Application(handler_args={"tcp_keepalive": False})
    app[STATE] = state or FakeState()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/embeddings", embeddings)
    add_anthropic_routes(app)
    add_gemini_routes(app)
    add_extra_routes(app)
    return app


def main() -> None:
    """Run standalone (used by the benchmark): python tests/fake_upstream.py PORT."""
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    state = FakeState(record=False)
    web.run_app(create_fake_app(state), host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
