"""OpenAI chat requests to Gemini generateContent requests, and Gemini answers back (pure, no I/O)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from nextmodel_proxy.config import ModelConfig
from nextmodel_proxy.errors import ProxyError, bad_request
from nextmodel_proxy.upstream import chat_shapes as cs

UNSUPPORTED: cs.Unsupported = {
    "n": cs.not_one,
    "logprobs": cs.truthy,
    "top_logprobs": cs.is_set,
    "logit_bias": cs.truthy,
    "audio": cs.is_set,
    "prediction": cs.is_set,
    "web_search_options": cs.is_set,
    "modalities": lambda v: v is not None and list(v) != ["text"],
}
# The budgets Google's own OpenAI-compatible layer uses for reasoning_effort.
THINKING_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
# Finish reasons that mean the model's answer is broken; reported as errors, never as an empty stop.
ERROR_FINISHES = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"})
GENERATION_FIELDS = (
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("top_k", "topK"),
    ("seed", "seed"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
)


def to_generate_request(body: Mapping[str, Any], model: ModelConfig) -> dict[str, Any]:
    """The generateContent request body for an OpenAI chat request."""
    cs.reject_unsupported(body, UNSUPPORTED, "Gemini")
    system, contents = _convert_messages(cs.messages_of(body))
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    declarations = [_declaration(fn) for fn in cs.function_tools(body)]
    if declarations:
        out["tools"] = [{"functionDeclarations": declarations}]
    tool_config = _tool_config(body.get("tool_choice"))
    if tool_config:
        out["toolConfig"] = tool_config
    config = _generation_config(body)
    if config:
        out["generationConfig"] = config
    return out


def _convert_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system parts, contents), merging same-role neighbours (parallel function responses share one turn)."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, which functionResponse needs
    for i, msg in enumerate(messages):
        role, param = msg["role"], f"messages[{i}]"
        if role in ("system", "developer"):
            text = cs.text_of(msg.get("content"), f"{param}.content")
            if text:
                system.append({"text": text})
            continue
        if role == "user":
            parts = _user_parts(msg.get("content"), f"{param}.content")
        elif role == "assistant":
            parts, role = _model_parts(msg, param, names), "model"
        elif role == "tool":
            parts, role = [_function_response(msg, param, names)], "user"
        else:
            raise cs.unknown_role(role, param)
        cs.append_turn(contents, role, parts, "parts")
    return system, contents


def _user_parts(content: Any, param: str) -> list[dict[str, Any]]:
    return [
        {"text": part["text"]} if kind == "text" else _inline_image(part, where)
        for kind, part, where in cs.user_parts(content, param, "Gemini")
    ]


def _inline_image(part: Mapping[str, Any], param: str) -> dict[str, Any]:
    data = cs.parse_data_url(cs.image_url_of(part, param))
    if data is None:
        raise ProxyError(
            400,
            f"{param}: Gemini needs images inline as base64 data: URLs",
            "unsupported_parameter",
            param=f"{param}.image_url",
        )
    return {"inlineData": {"mimeType": data[0], "data": data[1]}}


def signature_of(holder: Mapping[str, Any]) -> str | None:
    """The Gemini thought signature carried in an OpenAI object's extra_content.google."""
    extra = holder.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    sig = google.get("thought_signature") if isinstance(google, dict) else None
    return sig if isinstance(sig, str) else None


def _model_parts(msg: Mapping[str, Any], param: str, names: dict[str, str]) -> list[dict[str, Any]]:
    text = cs.text_of(msg.get("content"), f"{param}.content")
    parts: list[dict[str, Any]] = [{"text": text}] if text else []
    sig = signature_of(msg)
    if sig and parts:
        parts[-1]["thoughtSignature"] = sig
    for k, call in enumerate(msg.get("tool_calls") or []):
        args = cs.tool_arguments(call, f"{param}.tool_calls[{k}]")
        name = call["function"]["name"]
        if isinstance(call.get("id"), str):
            names[call["id"]] = name
        part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        sig = signature_of(call)
        if sig:
            part["thoughtSignature"] = sig
        parts.append(part)
    return parts


def _function_response(msg: Mapping[str, Any], param: str, names: Mapping[str, str]) -> dict[str, Any]:
    name = names.get(msg.get("tool_call_id"))  # type: ignore[arg-type]
    if name is None:
        raise bad_request(
            f"{param}.tool_call_id does not match a tool call of an earlier assistant message",
            "invalid_value",
            f"{param}.tool_call_id",
        )
    text = cs.text_of(msg.get("content"), f"{param}.content")
    try:
        result = orjson.loads(text)
    except orjson.JSONDecodeError:
        result = None
    # Gemini wants an object; a JSON object result goes as is, anything else under "output" as Google advises.
    response = result if isinstance(result, dict) else {"output": text}
    return {"functionResponse": {"name": name, "response": response}}


def _declaration(fn: Mapping[str, Any]) -> dict[str, Any]:
    decl: dict[str, Any] = {"name": fn["name"]}
    if fn.get("description"):
        decl["description"] = fn["description"]
    if fn.get("parameters"):
        # parametersJsonSchema takes OpenAI's JSON Schema as is (parameters only takes an OpenAPI subset).
        decl["parametersJsonSchema"] = fn["parameters"]
    return decl


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
    if isinstance(choice, str) and choice in modes:
        return {"functionCallingConfig": {"mode": modes[choice]}}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise bad_request(
        "tool_choice must be auto, none, required or a named function", "invalid_value", "tool_choice"
    )


def _generation_config(body: Mapping[str, Any]) -> dict[str, Any]:
    config = {dst: body[src] for src, dst in GENERATION_FIELDS if body.get(src) is not None}
    max_tokens = cs.max_tokens_of(body)
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    stops = cs.stop_list(body)
    if stops:
        config["stopSequences"] = stops
    config.update(_response_format(body.get("response_format")))
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in THINKING_BUDGETS:
            raise bad_request(
                f"reasoning_effort {effort!r} is not one of {', '.join(THINKING_BUDGETS)}",
                "invalid_value",
                "reasoning_effort",
            )
        budget = THINKING_BUDGETS[effort]
        config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": budget > 0}
    return config


def _response_format(fmt: Any) -> dict[str, Any]:
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return {}
    if fmt["type"] == "json_object":
        return {"responseMimeType": "application/json"}
    if fmt["type"] == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {}
        return {"responseMimeType": "application/json", "responseJsonSchema": schema}
    raise bad_request(
        f"response_format type {fmt['type']!r} is not supported", "invalid_value", "response_format"
    )


@dataclass(slots=True)
class Parts:
    """What one candidate's parts say, in OpenAI terms."""

    text: str = ""
    reasoning: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    signature: str | None = None  # a thought signature on a text part (no function call to carry it)


def read_parts(parts: Any) -> Parts:
    out = Parts()
    for part in parts if isinstance(parts, list) else []:
        sig = part.get("thoughtSignature")
        if isinstance(part.get("functionCall"), dict):
            fc = part["functionCall"]
            call = cs.tool_call(
                fc.get("id") or cs.new_call_id(),
                fc.get("name") or "",
                orjson.dumps(fc.get("args") or {}).decode(),
            )
            if sig:
                call["extra_content"] = {"google": {"thought_signature": sig}}
            out.calls.append(call)
            continue
        if part.get("thought"):
            out.reasoning += part.get("text") or ""
        elif isinstance(part.get("text"), str):
            out.text += part["text"]
        if sig:
            out.signature = sig
    return out


def finish_reason(reason: str | None, has_calls: bool) -> str | None:
    if reason is None:
        return None
    mapped = FINISH_REASONS.get(reason, "stop")
    return "tool_calls" if has_calls and mapped == "stop" else mapped


def broken_answer(candidate: Mapping[str, Any]) -> ProxyError | None:
    """The error for a finish reason that means the answer cannot be used (e.g. MALFORMED_FUNCTION_CALL)."""
    reason = candidate.get("finishReason")
    if reason not in ERROR_FINISHES:
        return None
    detail = candidate.get("finishMessage") or "no details given"
    return ProxyError(502, f"Gemini finished with {reason}: {detail}", "upstream_error")


def map_usage(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenAI usage from usageMetadata: thoughts count as completion (reasoning) tokens."""
    meta = meta or {}
    prompt = (meta.get("promptTokenCount") or 0) + (meta.get("toolUsePromptTokenCount") or 0)
    cached = meta.get("cachedContentTokenCount") or 0
    thoughts = meta.get("thoughtsTokenCount") or 0
    completion = (meta.get("candidatesTokenCount") or 0) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def load_response(raw: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProxyError(502, "Gemini returned a body that is not JSON", "upstream_error") from None
    if not isinstance(obj, dict):
        raise ProxyError(502, "Gemini returned an unexpected body", "upstream_error")
    return obj


def from_response(raw: bytes, fallback_model: str) -> bytes:
    """chat.completion JSON for a generateContent response body; broken answers raise ProxyError."""
    obj = load_response(raw)
    candidates = obj.get("candidates") or [{}]
    candidate = candidates[0]
    error = broken_answer(candidate)
    if error:
        raise error
    parts = read_parts((candidate.get("content") or {}).get("parts"))
    message = cs.assistant_message(parts.text, parts.calls, parts.reasoning)
    if parts.signature:
        message["extra_content"] = {"google": {"thought_signature": parts.signature}}
    feedback = obj.get("promptFeedback") if isinstance(obj.get("promptFeedback"), dict) else {}
    reason = candidate.get("finishReason") or ("SAFETY" if feedback.get("blockReason") else None)
    out = cs.completion(
        obj.get("responseId") or "gemini-" + cs.new_call_id()[5:],
        int(time.time()),
        obj.get("modelVersion") or fallback_model,
        message,
        finish_reason(reason, bool(parts.calls)),
        map_usage(obj.get("usageMetadata")),
    )
    return orjson.dumps(out)


def error_details(status: int, obj: Any) -> tuple[int, dict[str, Any]]:
    """(status, OpenAI error object) for a Google error body ({"error": {code, message, status}})."""
    if isinstance(obj, list) and obj:  # streamGenerateContent without alt=sse wraps errors in an array
        obj = obj[0]
    err = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(err, dict):
        return status, cs.error_object(status, f"Gemini returned HTTP {status}", "upstream_error")
    message = err.get("message") if isinstance(err.get("message"), str) else f"Gemini returned HTTP {status}"
    # In a stream the HTTP status is already 200; the error's own code says what kind of failure it is.
    kind_status = err["code"] if status == 200 and isinstance(err.get("code"), int) else status
    return status, cs.error_object(kind_status, message, err.get("status") or "upstream_error")


def from_error(status: int, raw: bytes) -> tuple[int, bytes]:
    """(status, OpenAI error JSON) for an error answer."""
    return cs.translate_error(status, raw, error_details)
