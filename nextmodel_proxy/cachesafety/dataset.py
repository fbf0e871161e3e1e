"""The trap-file contract: JSONL, one labelled pair a line; loading with per-line problems, never a traceback.

A line: {"id": str, "family": str, "same_answer": bool, "a": <request>, "b": <request>}. A request is a string
(one user message) or a chat-completions body (an object with `messages`, optionally `model`, `tools` and
parameters). `a` is the request whose answer is cached, `b` the new one; `same_answer` says whether `a`'s
answer is a correct answer to `b`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

SHIPPED_NAME = "traps.jsonl"
DEFAULT_MODEL = "demo-chat"  # a request without `model` is sent to this one
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass(frozen=True, slots=True)
class Pair:
    id: str
    family: str
    same_answer: bool
    a: dict[str, Any]
    b: dict[str, Any]
    source: str  # file:line, for messages


@dataclass(frozen=True, slots=True)
class Problem:
    source: str  # file name
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


def shipped_path() -> Path:
    """The trap file shipped as package data."""
    return Path(str(resources.files("nextmodel_proxy.cachesafety") / "data" / SHIPPED_NAME))


def _request_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return None if value else "is an empty string"
    if not isinstance(value, dict):
        return f"must be a string or a chat-completions object, not {type(value).__name__}"
    messages = value.get("messages")
    if not isinstance(messages, list) or not messages:
        return 'has no "messages" list (a chat-completions body needs one)'
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages[{i}] is not an object"
        if message.get("role") not in _ROLES:
            return f"messages[{i}].role must be one of {', '.join(sorted(_ROLES))}"
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            return f"messages[{i}].content must be a string, a list of parts or null"
    if "model" in value and not (isinstance(value["model"], str) and value["model"]):
        return '"model" must be a non-empty string'
    if "tools" in value and not isinstance(value["tools"], list):
        return '"tools" must be a list'
    return None


def as_body(value: str | dict[str, Any], default_model: str = DEFAULT_MODEL) -> dict[str, Any]:
    """A request as a chat-completions body: a string becomes one user message; a missing model is filled."""
    if isinstance(value, str):
        return {"model": default_model, "messages": [{"role": "user", "content": value}]}
    if "model" not in value:
        return {"model": default_model, **value}
    return value


def parse_line(raw: bytes, default_model: str = DEFAULT_MODEL) -> tuple[dict[str, Any] | None, str | None]:
    """(fields, None) for a good line, (None, reason) for a bad one."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, f"not JSON ({exc.args[0].split(':')[0] if exc.args else 'invalid'})"
    if not isinstance(obj, dict):
        return None, f"a line must be a JSON object, not {type(obj).__name__}"
    missing = [k for k in ("id", "family", "same_answer", "a", "b") if k not in obj]
    if missing:
        return None, f"missing field{'s' if len(missing) > 1 else ''}: {', '.join(missing)}"
    if not isinstance(obj["id"], str | int) or isinstance(obj["id"], bool):
        return None, '"id" must be a string'
    if not isinstance(obj["family"], str) or not obj["family"]:
        return None, '"family" must be a non-empty string'
    if not isinstance(obj["same_answer"], bool):
        return None, '"same_answer" must be true or false'
    for side in ("a", "b"):
        problem = _request_problem(obj[side])
        if problem:
            return None, f'"{side}" {problem}'
    return {
        "id": str(obj["id"]),
        "family": obj["family"],
        "same_answer": obj["same_answer"],
        "a": as_body(obj["a"], default_model),
        "b": as_body(obj["b"], default_model),
    }, None


def load(paths: Iterable[str | Path], default_model: str = DEFAULT_MODEL) -> tuple[list[Pair], list[Problem]]:
    """Every valid pair of every file, and each bad line with its number and reason (unreadable file: line 0)."""
    pairs: list[Pair] = []
    problems: list[Problem] = []
    for path in paths:
        name = str(path)
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            problems.append(Problem(name, 0, f"cannot read: {exc.strerror or exc}"))
            continue
        for number, raw in enumerate(data.split(b"\n"), start=1):
            if not raw.strip():
                continue
            fields, reason = parse_line(raw, default_model)
            if fields is None:
                problems.append(Problem(name, number, reason or "invalid"))
                continue
            pairs.append(Pair(source=f"{name}:{number}", **fields))
    return pairs, problems
