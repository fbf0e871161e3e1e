"""An OpenAI Responses request -> the equivalent chat.completions request (pure, stateless)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from nextmodel_proxy.errors import ProxyError, bad_request

# Responses fields with a chat equivalent under the same name.
_SAME = ("temperature", "top_p", "parallel_tool_calls", "user", "service_tier", "top_logprobs", "seed")
# Fields that only tune how the provider stores or displays a response; a stateless translation drops them.
_IGNORED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "stream",
        "stream_options",
        "metadata",
        "store",
        "include",
        "truncation",
        "prompt_cache_key",
        "safety_identifier",
        "max_output_tokens",
        "tools",
        "tool_choice",
        "text",
        "reasoning",
        *_SAME,
    }
)
# Stateful or server-side features a translated upstream cannot serve.
_STATEFUL = ("previous_response_id", "conversation", "background", "prompt", "max_tool_calls")


def unsupported(param: str, why: str) -> ProxyError:
    return ProxyError(400, f"{param}: {why}", "unsupported_parameter", param=param)


def to_chat_request(body: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The chat request for `body`; `where` names the upstream in errors ("anthropic (translated)")."""
    for name in _STATEFUL:
        if body.get(name) not in (None, False):
            raise unsupported(
                name,
                f"not supported for this model: its upstream ({where}) does not serve the Responses API "
                "natively and the proxy translates statelessly. Send the whole conversation in `input`.",
            )
    if body.get("store") is True:
        raise unsupported(
            "store",
            f"store: true is not supported for this model: its upstream ({where}) is reached through a "
            "stateless translation that keeps nothing. Omit store or set it to false.",
        )
    for name in body:
        if name not in _IGNORED and name not in _STATEFUL:
            raise unsupported(name, f"not supported when translating the Responses API to {where}")
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        messages.append({"role": "system", "content": body["instructions"]})
    messages.extend(_input_messages(body.get("input")))
    out: dict[str, Any] = {"model": body["model"], "messages": messages}
    for name in _SAME:
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    tools = [_tool(t, i) for i, t in enumerate(body.get("tools") or [])]
    if tools:
        out["tools"] = tools
    if body.get("tool_choice") is not None:
        out["tool_choice"] = _tool_choice(body["tool_choice"])
    fmt = _response_format(body.get("text"))
    if fmt is not None:
        out["response_format"] = fmt
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        out["reasoning_effort"] = reasoning["effort"]
    if body.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _input_messages(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise bad_request("'input' must be a string or an array of input items.", "invalid_type", "input")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise bad_request(f"'{param}' must be an object.", "invalid_type", param)
        kind = item.get("type", "message")
        if kind == "message":
            _message(out, item, param)
        elif kind == "function_call":
            call = {
                "id": item.get("call_id") or item.get("id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"},
            }
            if out and out[-1]["role"] == "assistant" and out[-1].get("tool_calls") is not None:
                out[-1]["tool_calls"].append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _text_parts(output, f"{param}.output")
            out.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
        elif kind == "reasoning":
            continue  # a reasoning item from an earlier answer: nothing a chat upstream can take back
        else:
            raise unsupported(f"{param}.type", f"input items of type {kind!r} cannot be translated to chat")
    if not out:
        raise bad_request("'input' must not be empty.", "invalid_value", "input")
    return out


def _message(out: list[dict[str, Any]], item: Mapping[str, Any], param: str) -> None:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise bad_request(
            f"'{param}.role' must be user, assistant, system or developer.", "invalid_value", f"{param}.role"
        )
    content = item.get("content")
    if isinstance(content, str):
        out.append({"role": role, "content": content})
        return
    if not isinstance(content, list):
        raise bad_request(
            f"'{param}.content' must be a string or an array.", "invalid_type", f"{param}.content"
        )
    if role != "user":
        out.append({"role": role, "content": _text_parts(content, f"{param}.content")})
        return
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        where = f"{param}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image: dict[str, Any] = {"url": part["image_url"]}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise unsupported(where, f"content parts of type {kind!r} cannot be translated to chat")
    out.append({"role": "user", "content": parts})


def _text_parts(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content if isinstance(content, list) else []):
        if not isinstance(part, dict) or not isinstance(part.get("text"), str):
            raise unsupported(f"{param}[{j}]", "only text parts can be translated here")
        texts.append(part["text"])
    return "".join(texts)


def _tool(tool: Any, i: int) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("name"), str):
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise unsupported(f"tools[{i}]", f"only function tools can be translated to chat (got {kind!r})")
    fn: dict[str, Any] = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object"}}
    if tool.get("description"):
        fn["description"] = tool["description"]
    if tool.get("strict") is not None:
        fn["strict"] = tool["strict"]
    return {"type": "function", "function": fn}


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise unsupported("tool_choice", f"{orjson.dumps(choice).decode()} cannot be translated to chat")


def _response_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    if fmt["type"] == "json_schema":
        schema = {"name": fmt.get("name") or "response", "schema": fmt.get("schema") or {}}
        if fmt.get("strict") is not None:
            schema["strict"] = fmt["strict"]
        if fmt.get("description"):
            schema["description"] = fmt["description"]
        return {"type": "json_schema", "json_schema": schema}
    raise unsupported("text.format", f"format type {fmt['type']!r} cannot be translated to chat")
