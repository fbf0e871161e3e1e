"""chat.completion answers -> OpenAI Responses objects and events (pure state machines, no I/O)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from nextmodel_proxy.sse import named_event

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def usage_to_responses(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Responses usage for OpenAI chat usage (cache reads and writes stay parts of input_tokens)."""
    if not isinstance(usage, Mapping):
        return None
    prompt = usage.get("prompt_tokens") or 0
    output = usage.get("completion_tokens") or 0
    pdet = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    cdet = (
        usage.get("completion_tokens_details")
        if isinstance(usage.get("completion_tokens_details"), dict)
        else {}
    )
    details: dict[str, Any] = {"cached_tokens": pdet.get("cached_tokens") or 0}
    if pdet.get("cache_write_tokens"):
        details["cache_write_tokens"] = pdet["cache_write_tokens"]
    return {
        "input_tokens": prompt,
        "input_tokens_details": details,
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": cdet.get("reasoning_tokens") or 0},
        "total_tokens": prompt + output,
    }


def usage_from_responses(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """OpenAI chat usage for a Responses usage object (what receipts and pricing read)."""
    if not isinstance(usage, Mapping):
        return None
    idet = usage.get("input_tokens_details") if isinstance(usage.get("input_tokens_details"), dict) else {}
    odet = usage.get("output_tokens_details") if isinstance(usage.get("output_tokens_details"), dict) else {}
    prompt, output = usage.get("input_tokens") or 0, usage.get("output_tokens") or 0
    pdet = {"cached_tokens": idet.get("cached_tokens") or 0}
    if idet.get("cache_write_tokens"):
        pdet["cache_write_tokens"] = idet["cache_write_tokens"]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": pdet,
        "completion_tokens_details": {"reasoning_tokens": odet.get("reasoning_tokens") or 0},
    }


def resp_id(chat_id: Any) -> str:
    base = str(chat_id or "unknown")
    return base if base.startswith("resp_") else "resp_" + base.removeprefix("chatcmpl-")


def skeleton(request: Mapping[str, Any], rid: str, model: str, created: int) -> dict[str, Any]:
    """A Response object echoing the request's settings, with no output yet."""
    text = request.get("text") if isinstance(request.get("text"), dict) else {"format": {"type": "text"}}
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": {"effort": (request.get("reasoning") or {}).get("effort"), "summary": None},
        "store": False,
        "temperature": request.get("temperature"),
        "text": text,
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p"),
        "truncation": "disabled",
        "usage": None,
        "user": request.get("user"),
        "metadata": request.get("metadata") or {},
    }


def finish(resp: dict[str, Any], finish_reason: Any, usage: Any) -> dict[str, Any]:
    reason = INCOMPLETE.get(str(finish_reason))
    resp["status"] = "incomplete" if reason else "completed"
    resp["incomplete_details"] = {"reason": reason} if reason else None
    resp["usage"] = usage_to_responses(usage)
    return resp


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if text else [],
    }


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}


def from_completion(obj: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
    """The Response object for a non-stream chat.completion."""
    rid = resp_id(obj.get("id"))
    resp = skeleton(
        request, rid, str(obj.get("model") or request.get("model")), int(obj.get("created") or time.time())
    )
    choices = obj.get("choices") if isinstance(obj.get("choices"), list) else []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    suffix = rid.removeprefix("resp_")
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        resp["output"].append(reasoning_item(f"rs_{suffix}", reasoning))
    text = message.get("content")
    if isinstance(text, str) and text:
        resp["output"].append(message_item(f"msg_{suffix}", text, "completed"))
    for k, call in enumerate(message.get("tool_calls") or []):
        fn = call.get("function") or {}
        call_id = call.get("id") or f"call_{suffix}_{k}"
        resp["output"].append(
            call_item(f"fc_{call_id}", call_id, fn.get("name") or "", fn.get("arguments") or "", "completed")
        )
    return finish(resp, choice.get("finish_reason"), obj.get("usage"))


def error_event(code: str | None, message: str, param: str | None, seq: int) -> bytes:
    return named_event(
        "error", {"type": "error", "code": code, "message": message, "param": param, "sequence_number": seq}
    )


def from_completion_bytes(raw: bytes, request: Mapping[str, Any]) -> bytes:
    return orjson.dumps(from_completion(orjson.loads(raw), request))
