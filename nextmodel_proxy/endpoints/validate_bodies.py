"""Shape checks for Responses, Messages and completions bodies (pure): a malformed body never goes upstream."""

from __future__ import annotations

from typing import Any

from nextmodel_proxy.errors import bad_request


def _number(body: dict[str, Any], name: str) -> None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise bad_request(f"'{name}' must be a number.", "invalid_type", name)


def _positive_int(body: dict[str, Any], name: str, *, required: bool = False) -> None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"Missing required parameter: '{name}'.", "missing_field", name)
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"'{name}' must be an integer.", "invalid_type", name)
    if value < 1:
        raise bad_request(f"'{name}' must be at least 1.", "invalid_value", name)


def _common(body: dict[str, Any]) -> None:
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise bad_request("'stream' must be a boolean.", "invalid_type", "stream")
    if body.get("tools") is not None and not isinstance(body["tools"], list):
        raise bad_request("'tools' must be an array.", "invalid_type", "tools")
    for name in ("temperature", "top_p"):
        _number(body, name)


def check_responses(body: dict[str, Any]) -> None:
    value = body.get("input")
    if value is None:
        raise bad_request("Missing required parameter: 'input'.", "missing_field", "input")
    if not isinstance(value, str | list):
        raise bad_request("'input' must be a string or an array of input items.", "invalid_type", "input")
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise bad_request(f"'input[{i}]' must be an object.", "invalid_type", f"input[{i}]")
    if body.get("instructions") is not None and not isinstance(body["instructions"], str):
        raise bad_request("'instructions' must be a string.", "invalid_type", "instructions")
    _positive_int(body, "max_output_tokens")
    _common(body)


def _check_messages_list(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise bad_request("messages: Field required", "missing_field", "messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages: must be a non-empty array", "invalid_type", "messages")
    for i, msg in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(msg, dict):
            raise bad_request(f"{where}: must be an object", "invalid_type", where)
        if msg.get("role") not in ("user", "assistant"):
            raise bad_request(
                f"{where}.role: must be 'user' or 'assistant'", "invalid_value", f"{where}.role"
            )
        content = msg.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise bad_request(
                f"{where}.content: must be a string or an array of blocks", "invalid_type", f"{where}.content"
            )
        for j, block in enumerate(content):
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise bad_request(
                    f"{where}.content.{j}: must be a content block with a type",
                    "invalid_type",
                    f"{where}.content.{j}",
                )
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise bad_request("system: must be a string or an array of text blocks", "invalid_type", "system")


def check_messages(body: dict[str, Any]) -> None:
    _check_messages_list(body)
    _positive_int(body, "max_tokens", required=True)
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise bad_request("stop_sequences: must be an array of strings", "invalid_type", "stop_sequences")
    _number(body, "top_k")
    _common(body)


def check_count_tokens(body: dict[str, Any]) -> None:
    _check_messages_list(body)
    if body.get("tools") is not None and not isinstance(body["tools"], list):
        raise bad_request("tools: must be an array", "invalid_type", "tools")


def check_completions(body: dict[str, Any]) -> None:
    prompt = body.get("prompt")
    if prompt is None:
        raise bad_request("Missing required parameter: 'prompt'.", "missing_field", "prompt")
    if not isinstance(prompt, str | list):
        raise bad_request("'prompt' must be a string or an array.", "invalid_type", "prompt")
    if body.get("suffix") is not None and not isinstance(body["suffix"], str):
        raise bad_request("'suffix' must be a string.", "invalid_type", "suffix")
    _positive_int(body, "max_tokens")
    _positive_int(body, "n")
    _common(body)


CHECKS = {"responses": check_responses, "messages": check_messages, "completions": check_completions}
