"""An Anthropic Messages request -> the equivalent chat.completions request (pure, stateless)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from nextmodel_proxy.endpoints.responses_request import unsupported
from nextmodel_proxy.errors import bad_request

# Hints a chat upstream has no use for; dropping them changes no answer's meaning.
_DROPPED = frozenset(
    {"metadata", "service_tier", "thinking", "container", "context_management", "mcp_servers"}
)
_KNOWN = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        *_DROPPED,
    }
)


def to_chat_request(body: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The chat request for a Messages body (validated by validate_bodies.check_messages first)."""
    for name in body:
        if name not in _KNOWN:
            raise unsupported(name, f"not supported when translating the Messages API to {where}")
    if body.get("mcp_servers") or body.get("container"):
        raise unsupported(
            "mcp_servers" if body.get("mcp_servers") else "container",
            f"server-side tools are not available through {where}",
        )
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    elif isinstance(system, list):
        text = "\n\n".join(
            b.get("text", "") for b in system if isinstance(b, dict) and b.get("type") == "text"
        )
        if text:
            messages.append({"role": "system", "content": text})
    for i, msg in enumerate(body["messages"]):
        messages.extend(_turn(msg, f"messages[{i}]"))
    out: dict[str, Any] = {"model": body["model"], "messages": messages, "max_tokens": body["max_tokens"]}
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    user = (body.get("metadata") or {}).get("user_id") if isinstance(body.get("metadata"), dict) else None
    if isinstance(user, str):
        out["user"] = user
    tools = [_tool(t, i) for i, t in enumerate(body.get("tools") or [])]
    if tools:
        out["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        mapped = {"auto": "auto", "any": "required", "none": "none"}.get(kind)
        if kind == "tool" and isinstance(choice.get("name"), str):
            out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        elif mapped:
            out["tool_choice"] = mapped
        else:
            raise unsupported("tool_choice", f"{orjson.dumps(choice).decode()} cannot be translated")
        if choice.get("disable_parallel_tool_use") is True and tools:
            out["parallel_tool_calls"] = False
    if body.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _turn(msg: Mapping[str, Any], param: str) -> list[dict[str, Any]]:
    role, content = msg["role"], msg["content"]
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if role == "assistant":
        return [_assistant(content, param)]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        where = f"{param}.content[{j}]"
        kind = block.get("type")
        if kind == "tool_result":
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": block.get("tool_use_id"),
                    "content": _result_text(block, where, parts),
                }
            )
        elif kind == "text":
            parts.append({"type": "text", "text": block.get("text") or ""})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, where)}})
        else:
            raise unsupported(
                f"{where}.type", f"content blocks of type {kind!r} cannot be translated to chat"
            )
    if parts:  # tool results answer the previous assistant turn, so they come first
        plain = all(p["type"] == "text" for p in parts)
        out.append({"role": "user", "content": "\n\n".join(p["text"] for p in parts) if plain else parts})
    return out


def _assistant(content: list[Any], param: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue  # signed thinking means nothing to another provider
        else:
            raise unsupported(
                f"{param}.content[{j}].type", f"assistant blocks of type {kind!r} cannot be translated"
            )
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        out["tool_calls"] = calls
    return out


def _result_text(block: Mapping[str, Any], where: str, images: list[dict[str, Any]]) -> str:
    """A tool result's text; its images (a chat tool message holds text only) go to the user message that
    follows the tool messages, and the text says so."""
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        pieces = []
        for k, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                pieces.append(part.get("text") or "")
            elif kind == "image":
                images.append(
                    {"type": "image_url", "image_url": {"url": _image_url(part, f"{where}.content[{k}]")}}
                )
                pieces.append(f"[image {len(images)} of this tool result follows in the next user message]")
            else:
                raise unsupported(
                    f"{where}.content[{k}]", "only text and image tool results can be translated"
                )
        text = "".join(pieces)
    return f"Error: {text}" if block.get("is_error") is True else text


def _image_url(block: Mapping[str, Any], where: str) -> str:
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    if source.get("type") == "base64" and isinstance(source.get("data"), str):
        return f"data:{source.get('media_type') or 'image/png'};base64,{source['data']}"
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return source["url"]
    raise bad_request(
        f"'{where}.source' must be a base64 or url image source.", "invalid_value", f"{where}.source"
    )


def _tool(tool: Any, i: int) -> dict[str, Any]:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind not in (None, "custom") or not isinstance(tool.get("name"), str):
        raise unsupported(f"tools[{i}]", f"only client tools can be translated to chat (got type {kind!r})")
    fn: dict[str, Any] = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object"}}
    if tool.get("description"):
        fn["description"] = tool["description"]
    return {"type": "function", "function": fn}
