"""OpenAI chat requests to Anthropic Messages requests, and Messages answers back (pure, no I/O)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from nextmodel_proxy.config import ModelConfig
from nextmodel_proxy.errors import ProxyError, bad_request
from nextmodel_proxy.upstream import chat_shapes as cs

DEFAULT_MAX_TOKENS = 4096
UNSUPPORTED: cs.Unsupported = {
    "n": cs.not_one,
    "logprobs": cs.truthy,
    "top_logprobs": cs.is_set,
    "logit_bias": cs.truthy,
    "presence_penalty": cs.non_zero,
    "frequency_penalty": cs.non_zero,
    "seed": cs.is_set,
    "audio": cs.is_set,
    "prediction": cs.is_set,
    "web_search_options": cs.is_set,
    "modalities": lambda v: v is not None and list(v) != ["text"],
}
# reasoning_effort -> extended-thinking budget (Anthropic's minimum budget is 1024 tokens).
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}
MIN_THINKING_BUDGET = 1024
THINKING_BLOCK_TYPES = ("thinking", "redacted_thinking")
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
    "model_context_window_exceeded": "length",
}
# Anthropic says 529 overloaded; OpenAI clients and our retry logic know 503 as "try again later".
STATUS_REMAP = {529: 503}
# The status each documented error type comes with, to type errors that arrive inside a 200 stream.
TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 503,
}
JSON_OBJECT_INSTRUCTION = "Respond with one valid JSON object and nothing else: no prose, no code fences."
JSON_SCHEMA_INSTRUCTION = (
    "Respond with one valid JSON value that conforms to this JSON Schema, and nothing else "
    "(no prose, no code fences):\n"
)


def to_messages_request(body: Mapping[str, Any], model: ModelConfig) -> dict[str, Any]:
    """The Messages API request for an OpenAI chat request."""
    cs.reject_unsupported(body, UNSUPPORTED, "Anthropic")
    system, messages = _convert_messages(cs.messages_of(body))
    system.extend(_response_format_system(body.get("response_format")))
    max_tokens = cs.max_tokens_of(body) or model.max_output or DEFAULT_MAX_TOKENS
    out: dict[str, Any] = {"model": model.upstream_id, "max_tokens": max_tokens, "messages": messages}
    if system:
        out["system"] = system
    thinking = _thinking(body.get("reasoning_effort"), max_tokens)
    if thinking:
        out["thinking"] = thinking
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or not 0 <= temperature <= 1:
            raise bad_request(
                "temperature must be between 0 and 1 for Anthropic models", "invalid_value", "temperature"
            )
        out["temperature"] = temperature
    for src, dst in (("top_p", "top_p"), ("top_k", "top_k")):
        if body.get(src) is not None:
            out[dst] = body[src]
    stops = cs.stop_list(body)
    if stops:
        out["stop_sequences"] = stops
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    tools = [_tool(fn) for fn in cs.function_tools(body)]
    if tools:
        out["tools"] = tools
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice:
        out["tool_choice"] = choice
    if body.get("stream"):
        out["stream"] = True
    return out


def _convert_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system text blocks, alternating user/assistant messages), merging same-role neighbours."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        role, param = msg["role"], f"messages[{i}]"
        if role in ("system", "developer"):
            system.extend(_system_blocks(msg.get("content"), f"{param}.content"))
            continue
        if role == "user":
            blocks = _user_blocks(msg.get("content"), f"{param}.content")
        elif role == "assistant":
            blocks = _assistant_blocks(msg, param)
        elif role == "tool":
            blocks = [_tool_result(msg, param)]
            role = "user"
        else:
            raise cs.unknown_role(role, param)
        cs.append_turn(out, role, blocks, "content")
    return system, out


def _system_blocks(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, list):
        cs.text_of(content, param)  # validates the parts
        return [_text_block(p) for p in content if p.get("text")]
    text = cs.text_of(content, param)
    return [{"type": "text", "text": text}] if text else []


def _text_block(part: Mapping[str, Any]) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": part.get("text") or ""}
    if isinstance(part.get("cache_control"), dict):  # clients that mark cache breakpoints keep them
        block["cache_control"] = part["cache_control"]
    return block


def _user_blocks(content: Any, param: str) -> list[dict[str, Any]]:
    return [
        _text_block(part) if kind == "text" else _image_block(cs.image_url_of(part, where))
        for kind, part, where in cs.user_parts(content, param, "Anthropic")
    ]


def _image_block(url: str) -> dict[str, Any]:
    data = cs.parse_data_url(url)
    if data:
        return {"type": "image", "source": {"type": "base64", "media_type": data[0], "data": data[1]}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _thinking(effort: Any, max_tokens: int) -> dict[str, Any] | None:
    """Extended thinking for reasoning_effort; the budget must stay below max_tokens, which includes it."""
    if effort is None or effort == "none":
        return None
    if effort not in THINKING_BUDGETS:
        raise bad_request(
            f"reasoning_effort {effort!r} is not one of none, {', '.join(THINKING_BUDGETS)}",
            "invalid_value",
            "reasoning_effort",
        )
    budget = min(THINKING_BUDGETS[effort], max_tokens - 1)
    if budget < MIN_THINKING_BUDGET:
        raise bad_request(
            f"reasoning_effort needs max_tokens above {MIN_THINKING_BUDGET} on Anthropic models",
            "invalid_value",
            "max_tokens",
        )
    return {"type": "enabled", "budget_tokens": budget}


def thinking_blocks_of(msg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Signed thinking blocks an earlier answer carried in extra_content.anthropic; Anthropic wants them back."""
    extra = msg.get("extra_content")
    anthropic = extra.get("anthropic") if isinstance(extra, dict) else None
    blocks = anthropic.get("thinking_blocks") if isinstance(anthropic, dict) else None
    if not isinstance(blocks, list):
        return []
    return [b for b in blocks if isinstance(b, dict) and b.get("type") in THINKING_BLOCK_TYPES]


def _assistant_blocks(msg: Mapping[str, Any], param: str) -> list[dict[str, Any]]:
    text = cs.text_of(msg.get("content"), f"{param}.content")
    blocks = thinking_blocks_of(msg)
    if text:
        blocks.append({"type": "text", "text": text})
    for k, call in enumerate(msg.get("tool_calls") or []):
        cparam = f"{param}.tool_calls[{k}]"
        args = cs.tool_arguments(call, cparam)
        if not isinstance(call.get("id"), str):
            raise bad_request(f"{cparam}.id is required", "missing_field", f"{cparam}.id")
        blocks.append({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": args})
    return blocks


def _tool_result(msg: Mapping[str, Any], param: str) -> dict[str, Any]:
    if not isinstance(msg.get("tool_call_id"), str):
        raise bad_request(f"{param}.tool_call_id is required", "missing_field", f"{param}.tool_call_id")
    text = cs.text_of(msg.get("content"), f"{param}.content")
    return {"type": "tool_result", "tool_use_id": msg["tool_call_id"], "content": text}


def _tool(fn: Mapping[str, Any]) -> dict[str, Any]:
    tool = {"name": fn["name"], "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}}
    if fn.get("description"):
        tool["description"] = fn["description"]
    return tool


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None:
        out = None
    elif choice in ("auto", "none"):
        out = {"type": choice}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise bad_request(
            "tool_choice must be auto, none, required or a named function", "invalid_value", "tool_choice"
        )
    if parallel is False and (out is None or out["type"] != "none"):
        out = {**(out or {"type": "auto"}), "disable_parallel_tool_use": True}
    return out


def _response_format_system(fmt: Any) -> list[dict[str, Any]]:
    """JSON modes become a system instruction: it works on every Claude model, unlike native output formats."""
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return []
    if fmt["type"] == "json_object":
        return [{"type": "text", "text": JSON_OBJECT_INSTRUCTION}]
    if fmt["type"] == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {}
        return [{"type": "text", "text": JSON_SCHEMA_INSTRUCTION + orjson.dumps(schema).decode()}]
    raise bad_request(
        f"response_format type {fmt['type']!r} is not supported", "invalid_value", "response_format"
    )


def map_usage(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenAI usage from Anthropic's: cache reads and writes are parts of prompt_tokens, named in its details.

    cache_write_tokens is where OpenAI-shaped usage readers (pricing) find writes; the raw Anthropic fields stay.
    """
    usage = usage or {}
    fresh = usage.get("input_tokens") or 0
    reads = usage.get("cache_read_input_tokens") or 0
    writes = usage.get("cache_creation_input_tokens") or 0
    output = usage.get("output_tokens") or 0
    prompt = fresh + reads + writes
    details = {"cached_tokens": reads, "cache_write_tokens": writes}
    out = {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": details,
        "cache_read_input_tokens": reads,
        "cache_creation_input_tokens": writes,
    }
    # The 1-hour part of the writes (priced at cache_write_1h) and the tier Anthropic served at.
    creation = usage.get("cache_creation")
    if isinstance(creation, Mapping):
        out["cache_creation"] = dict(creation)
        details["cache_write_1h_tokens"] = creation.get("ephemeral_1h_input_tokens") or 0
    if isinstance(usage.get("service_tier"), str):
        out["service_tier"] = usage["service_tier"]
    return out


def finish_reason(stop_reason: str | None) -> str | None:
    return None if stop_reason is None else FINISH_REASONS.get(stop_reason, "stop")


def from_message(raw: bytes, fallback_model: str) -> bytes:
    """chat.completion JSON for a Messages API response body."""
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProxyError(502, "Anthropic returned a body that is not JSON", "upstream_error") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("content"), list):
        raise ProxyError(502, "Anthropic returned an unexpected body", "upstream_error")
    texts, reasoning, calls, thinking = [], [], [], []
    for block in msg["content"]:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind in THINKING_BLOCK_TYPES:
            reasoning.append(block.get("thinking") or "")
            thinking.append(block)
        elif kind == "tool_use":
            calls.append(
                cs.tool_call(block["id"], block["name"], orjson.dumps(block.get("input", {})).decode())
            )
    message = cs.assistant_message("".join(texts), calls, "".join(reasoning))
    if thinking:
        message["extra_content"] = {"anthropic": {"thinking_blocks": thinking}}
    out = cs.completion(
        msg.get("id") or "msg_unknown",
        int(time.time()),
        msg.get("model") or fallback_model,
        message,
        finish_reason(msg.get("stop_reason")),
        map_usage(msg.get("usage")),
    )
    return orjson.dumps(out)


def error_details(status: int, obj: Any) -> tuple[int, dict[str, Any]]:
    """(status, OpenAI error object) for an Anthropic error object or body."""
    err = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(err, dict):
        return status, cs.error_object(status, f"Anthropic returned HTTP {status}", "upstream_error")
    kind = err.get("type") if isinstance(err.get("type"), str) else "api_error"
    status = STATUS_REMAP.get(status, status)
    message = err.get("message") if isinstance(err.get("message"), str) else kind
    kind_status = TYPE_STATUS.get(kind, status) if status == 200 else status
    return status, cs.error_object(kind_status, message, kind)


def from_error(status: int, raw: bytes) -> tuple[int, bytes]:
    """(status, OpenAI error JSON) for an error answer."""
    return cs.translate_error(status, raw, error_details)
