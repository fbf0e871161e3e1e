"""The fake OpenAI upstream's /v1/responses and /v1/completions, per OpenAI's documented wire formats.

Responses (https://platform.openai.com/docs/api-reference/responses): the scenario comes from the model name:
  *tools*             one function_call output item (get_weather), arguments streamed in 6-character deltas
  *incomplete*        status incomplete (max_output_tokens) -- the stream ends with response.incomplete
  *failed*            the stream ends with response.failed, carrying usage of what was consumed
  *midstream-error*   a few text deltas, then an `error` event and the end of the body
  *error-400*         400 invalid_request_error before anything is streamed
  *cached*            8 input tokens reported as cached; *reason* 5 reasoning output tokens
otherwise a message whose text echoes the last user input. Streams are `event: <type>` + `data:` events with
sequence_number, no [DONE]. Legacy completions echo the prompt, and `suffix` when given.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

REQUESTS = web.AppKey("extra_requests", list)
CALL = {"call_id": "call_resp_weather1", "name": "get_weather", "arguments": '{"city":"Paris","unit":"c"}'}


def add_routes(app: web.Application) -> None:
    app[REQUESTS] = []
    app.router.add_post("/v1/responses", _responses)
    app.router.add_post("/v1/completions", _completions)


def _input_text(body: dict[str, Any]) -> str:
    value = body.get("input")
    if isinstance(value, str):
        return value
    for item in reversed(value or []):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
    return ""


def _usage(body: dict[str, Any], text: str, model: str) -> dict[str, Any]:
    prompt = 9 + len(orjson.dumps(body.get("input"))) // 4
    output = 1 + len(text) // 4 + (5 if "reason" in model else 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 8 if "cached" in model else 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 5 if "reason" in model else 0},
        "total_tokens": prompt + output,
    }


def _response(body: dict[str, Any], model: str, status: str, output: list, usage: Any) -> dict[str, Any]:
    return {
        "id": "resp_fake123",
        "object": "response",
        "created_at": 1700000000,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def _message(text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": "msg_fake123",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _call(status: str = "completed", arguments: str | None = None) -> dict[str, Any]:
    return {
        "id": "fc_fake123",
        "type": "function_call",
        "status": status,
        "call_id": CALL["call_id"],
        "name": CALL["name"],
        "arguments": CALL["arguments"] if arguments is None else arguments,
    }


def _error(status: int, message: str, type_: str, code: str | None) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


async def _received(request: web.Request, endpoint: str) -> tuple[dict[str, Any], str, web.Response | None]:
    """(body, model, the *error-400* answer if the model asks for one); the request is recorded."""
    body = orjson.loads(await request.read())
    request.app[REQUESTS].append((endpoint, dict(request.headers), body))
    model = str(body.get("model"))
    if "error-400" in model:
        return body, model, _error(400, "Invalid value.", "invalid_request_error", "invalid_value")
    return body, model, None


async def _responses(request: web.Request) -> web.StreamResponse:
    body, model, refusal = await _received(request, "responses")
    if refusal is not None:
        return refusal
    tools = "tools" in model
    text = "" if tools else "Echo: " + " ".join(_input_text(body).split()[:40])
    usage = _usage(body, CALL["arguments"] if tools else text, model)
    status = "incomplete" if "incomplete" in model else "completed"
    output = [_call()] if tools else [_message(text, status)]
    headers = {"x-request-id": "req_fake_responses"}
    if not body.get("stream"):
        return web.Response(
            body=orjson.dumps(_response(body, model, status, output, usage)),
            content_type="application/json",
            headers=headers,
        )
    events = _stream_events(body, model, text, tools, status, usage)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", **headers})
    await resp.prepare(request)
    for event in events:
        await resp.write(event)
    await resp.write_eof()
    return resp


def _stream_events(
    body: dict[str, Any], model: str, text: str, tools: bool, status: str, usage: dict[str, Any]
) -> list[bytes]:
    seq = 0
    out: list[bytes] = []

    def ev(kind: str, **fields: Any) -> None:
        nonlocal seq
        out.append(
            b"event: "
            + kind.encode()
            + b"\ndata: "
            + orjson.dumps({"type": kind, **fields, "sequence_number": seq})
            + b"\n\n"
        )
        seq += 1

    start = _response(body, model, "in_progress", [], None)
    ev("response.created", response=start)
    ev("response.in_progress", response=start)
    if tools:
        ev("response.output_item.added", output_index=0, item=_call("in_progress", ""))
        args = CALL["arguments"]
        for i in range(0, len(args), 6):
            ev(
                "response.function_call_arguments.delta",
                item_id="fc_fake123",
                output_index=0,
                delta=args[i : i + 6],
            )
        ev("response.function_call_arguments.done", item_id="fc_fake123", output_index=0, arguments=args)
        ev("response.output_item.done", output_index=0, item=_call())
        final = [_call()]
    else:
        item = {**_message("", "in_progress"), "content": []}
        ev("response.output_item.added", output_index=0, item=item)
        part = {"type": "output_text", "text": "", "annotations": []}
        ev("response.content_part.added", item_id="msg_fake123", output_index=0, content_index=0, part=part)
        for n, i in enumerate(range(0, len(text), 5)):
            if "midstream-error" in model and n == 3:
                ev("error", code="server_error", message="The model failed mid-response.", param=None)
                return out
            ev(
                "response.output_text.delta",
                item_id="msg_fake123",
                output_index=0,
                content_index=0,
                delta=text[i : i + 5],
                logprobs=[],
            )
        ev(
            "response.output_text.done",
            item_id="msg_fake123",
            output_index=0,
            content_index=0,
            text=text,
            logprobs=[],
        )
        ev(
            "response.content_part.done",
            item_id="msg_fake123",
            output_index=0,
            content_index=0,
            part={**part, "text": text},
        )
        ev("response.output_item.done", output_index=0, item=_message(text, status))
        final = [_message(text, status)]
    if "failed" in model:
        failed = _response(body, model, "failed", final, usage)
        failed["error"] = {"code": "server_error", "message": "The model failed."}
        ev("response.failed", response=failed)
    else:
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        ev(kind, response=_response(body, model, status, final, usage))
    return out


async def _completions(request: web.Request) -> web.StreamResponse:
    body, model, refusal = await _received(request, "completions")
    if refusal is not None:
        return refusal
    prompt = (
        body.get("prompt")
        if isinstance(body.get("prompt"), str)
        else orjson.dumps(body.get("prompt")).decode()
    )
    text = f" /* completes {prompt[-20:]!s} */"
    if isinstance(body.get("suffix"), str):
        text += f" /* before {body['suffix'][:20]} */"
    prompt_tokens = 3 + len(prompt) // 4 + len(body.get("suffix") or "") // 4
    completion_tokens = 1 + len(text) // 4
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    head = {"id": "cmpl-fake123", "object": "text_completion", "created": 1700000000, "model": model}
    if not body.get("stream"):
        obj = {
            **head,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
            "usage": usage,
        }
        return web.Response(
            body=orjson.dumps(obj),
            content_type="application/json",
            headers={"x-request-id": "req_fake_completions"},
        )
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "x-request-id": "req_fake_completions"}
    )
    await resp.prepare(request)
    pieces = [text[i : i + 6] for i in range(0, len(text), 6)]
    for i, piece in enumerate(pieces):
        finish = "stop" if i == len(pieces) - 1 else None
        choice = {"text": piece, "index": 0, "logprobs": None, "finish_reason": finish}
        await resp.write(b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n")
    if (body.get("stream_options") or {}).get("include_usage"):
        await resp.write(b"data: " + orjson.dumps({**head, "choices": [], "usage": usage}) + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp
