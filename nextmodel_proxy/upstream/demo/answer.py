"""What the demo model answers to a chat request: checks, choices, tokens, logprobs and usage (pure).

A token here is four characters of the reply, so `completion_tokens` equals `estimate.estimate_tokens` of the
text, logprobs list exactly the returned text, and `max_tokens` cuts where a client would expect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson
import xxhash

from nextmodel_proxy.estimate import CHARS_PER_TOKEN, estimate_tokens
from nextmodel_proxy.upstream.demo.schema import Prompt, instance

MAX_N = 128
MAX_TOP_LOGPROBS = 20
# Alternatives offered in top_logprobs (more than MAX_TOP_LOGPROBS, so one may be the chosen token).
_ALTERNATIVES = (
    " the", " a", ",", ".", " and", " of", " to", " in", " is", " it", "\n", " that", " for", " on",
    " with", " as", " was", " be", " at", " by", " you", " this",
)  # fmt: skip
_ROLES_WITH_RESULTS = ("tool", "function")


class DemoInputError(Exception):
    """A request a real OpenAI model would refuse with 400; message and param in OpenAI's words."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(slots=True)
class Choice:
    index: int
    content: str | None = None
    call: dict[str, Any] | None = None
    finish: str = "stop"
    tokens: list[str] = field(default_factory=list)
    logprobs: dict[str, Any] | None = None

    def completion_tokens(self) -> int:
        if self.call is not None:
            fn = self.call["function"]
            return estimate_tokens(fn["name"]) + estimate_tokens(fn["arguments"])
        return len(self.tokens)


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def split_tokens(text: str) -> list[str]:
    return [text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN)]


def _functions(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    return [
        t["function"]
        for t in tools
        if isinstance(t, dict)
        and t.get("type", "function") == "function"
        and isinstance(t.get("function"), dict)
    ]


def check(body: dict[str, Any]) -> None:
    """Raise DemoInputError for what OpenAI would reject (types the proxy already checked are not rechecked)."""
    n = body.get("n")
    if isinstance(n, int) and n > MAX_N:
        raise DemoInputError(f"Invalid 'n': must be at most {MAX_N}, got {n}.", "n")
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise DemoInputError("Invalid type for 'logprobs': expected a boolean.", "logprobs")
    top = body.get("top_logprobs")
    if top is not None:
        if not 0 <= top <= MAX_TOP_LOGPROBS:
            raise DemoInputError(f"'top_logprobs' must be between 0 and {MAX_TOP_LOGPROBS}.", "top_logprobs")
        if logprobs is not True:
            raise DemoInputError("'logprobs' must be true when 'top_logprobs' is set.", "top_logprobs")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str):
        if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
            raise DemoInputError(
                "'stop' must be a string or an array of at most 4 non-empty strings.", "stop"
            )
    for i, fn in enumerate(_functions(body)):
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            raise DemoInputError(f"Missing required parameter: 'tools[{i}].function.name'.", f"tools[{i}]")
    _check_tool_choice(body)
    rf = body.get("response_format")
    if rf is not None:
        kind = rf.get("type") if isinstance(rf, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            raise DemoInputError(
                "Invalid 'response_format.type': expected 'text', 'json_object' or 'json_schema'.",
                "response_format",
            )
        if kind == "json_schema" and not isinstance(rf.get("json_schema"), dict):
            raise DemoInputError(
                "Missing required parameter: 'response_format.json_schema'.", "response_format"
            )


def _check_tool_choice(body: dict[str, Any]) -> None:
    choice = body.get("tool_choice")
    if choice is None:
        return
    names = {fn.get("name") for fn in _functions(body)}
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise DemoInputError(
                "Invalid 'tool_choice': expected 'none', 'auto', 'required' or a named function.",
                "tool_choice",
            )
        if choice == "required" and not names:
            raise DemoInputError("'tool_choice' is 'required' but no tools were given.", "tool_choice")
        return
    name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if not isinstance(name, str):
        raise DemoInputError("Invalid 'tool_choice': a named choice needs 'function.name'.", "tool_choice")
    if name not in names:
        raise DemoInputError(f"Invalid 'tool_choice': function {name!r} is not among 'tools'.", "tool_choice")


def prompt_tokens(body: dict[str, Any]) -> int:
    """The estimator's count over the messages, plus the tool and schema definitions the model reads."""
    total = estimate_tokens(body.get("messages"))
    for extra in ("tools", "response_format"):
        if body.get(extra):
            total += estimate_tokens(orjson.dumps(body[extra]).decode())
    return total


class Answer:
    """Every choice of one request, decided once; both the JSON and the stream shapes render from it."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
        self.messages = [m for m in messages if isinstance(m, dict)]
        last_user = next((m for m in reversed(self.messages) if m.get("role") == "user"), None)
        self.asked = text_of(last_user.get("content")) if last_user else ""
        seed = body.get("seed") if isinstance(body.get("seed"), int) else 0
        self.key = orjson.dumps([self.messages, seed], option=orjson.OPT_SORT_KEYS)
        self.seed = xxhash.xxh3_64_intdigest(self.key)
        n = body.get("n") if isinstance(body.get("n"), int) else 1
        self.choices = [self._choice(i) for i in range(n)]
        self.prompt_tokens = prompt_tokens(body)

    def digest(self, index: int) -> str:
        return xxhash.xxh3_64_hexdigest(self.key, seed=index)[:8]

    def usage(self) -> dict[str, Any]:
        completion = sum(c.completion_tokens() for c in self.choices)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }

    # --- deciding -----------------------------------------------------------------------------

    def _choice(self, index: int) -> Choice:
        fn = self._function_to_call()
        if fn is not None:
            prompt = Prompt(self.asked, self.seed + index)
            params = fn.get("parameters") if isinstance(fn.get("parameters"), dict) else {"type": "object"}
            args = instance(params, prompt, fn["name"])
            if not isinstance(args, dict):  # tool arguments are always a JSON object
                args = {}
            call = {
                "id": f"call_demo{self.digest(index)}{index:02d}",
                "type": "function",
                "function": {"name": fn["name"], "arguments": orjson.dumps(args).decode()},
            }
            return Choice(index, call=call, finish="tool_calls")
        text, finish = self._cut(self._full_text(index))
        choice = Choice(index, content=text, finish=finish, tokens=split_tokens(text))
        if self.body.get("logprobs") is True:
            choice.logprobs = self._logprobs(choice, index)
        return choice

    def _function_to_call(self) -> dict[str, Any] | None:
        functions = _functions(self.body)
        choice = self.body.get("tool_choice", "auto")
        if not functions or choice == "none":
            return None
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
            return next(fn for fn in functions if fn.get("name") == name)
        if choice != "required" and self.messages and self.messages[-1].get("role") in _ROLES_WITH_RESULTS:
            return None  # a tool already answered: time for the final reply, so agent loops end
        return max(functions, key=self._relevance)

    def _relevance(self, fn: dict[str, Any]) -> int:
        """How many of the user's words the tool's name and description share (ties: the first tool)."""
        asked = {w for w in re.findall(r"[a-z]{3,}", self.asked.lower())}
        about = f"{fn.get('name', '')} {fn.get('description', '')}".lower().replace("_", " ")
        return len(asked & set(re.findall(r"[a-z]{3,}", about)))

    def _full_text(self, index: int) -> str:
        rf = self.body.get("response_format")
        kind = rf.get("type") if isinstance(rf, dict) else None
        if kind == "json_schema":
            spec = rf["json_schema"]
            schema = spec.get("schema") if isinstance(spec.get("schema"), dict) else {"type": "object"}
            value = instance(schema, Prompt(self.asked, self.seed + index), spec.get("name") or "value")
            return orjson.dumps(value).decode()
        if kind == "json_object":
            return orjson.dumps(
                {"demo": True, "echo": self.asked[:200], "digest": self.digest(index)}
            ).decode()
        results = self._tool_results()
        if results:
            return (
                f"Demo answer from the tool results (no model was called): {results} [{self.digest(index)}]"
            )
        snippet = " ".join(self.asked.split()[:24]) or "(no user message)"
        return (
            "This is a demo reply from NextModel Proxy (no upstream was called). "
            f"You said: {snippet} [{self.digest(index)}]"
        )

    def _tool_results(self) -> str:
        """The tool results after the last assistant turn that called tools, named by function."""
        if not self.messages or self.messages[-1].get("role") not in _ROLES_WITH_RESULTS:
            return ""
        names: dict[str, str] = {}
        for msg in self.messages:
            for call in msg.get("tool_calls") or []:
                if isinstance(call, dict) and isinstance(call.get("function"), dict):
                    names[call.get("id", "")] = call["function"].get("name", "tool")
        parts = []
        for msg in reversed(self.messages):
            if msg.get("role") not in _ROLES_WITH_RESULTS:
                break
            name = msg.get("name") or names.get(msg.get("tool_call_id", ""), "tool")
            parts.append(f"{name} returned {' '.join(text_of(msg.get('content')).split())[:200]}")
        return "; ".join(reversed(parts))

    def _cut(self, text: str) -> tuple[str, str]:
        limit = self.body.get("max_completion_tokens") or self.body.get("max_tokens")
        return cut(text, self.body.get("stop"), limit)

    def _logprobs(self, choice: Choice, index: int) -> dict[str, Any]:
        top = self.body.get("top_logprobs") or 0
        entries = token_logprobs(choice.tokens, self.seed + index * 7919, top)
        return {"content": entries, "refusal": None}


def cut(text: str, stop: Any, limit: Any) -> tuple[str, str]:
    """The text ended before the first stop string and at the token limit, with the finish_reason saying why."""
    for s in [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []:
        at = text.find(s) if isinstance(s, str) and s else -1
        if at >= 0:
            text = text[:at]
    if isinstance(limit, int) and len(text) > limit * CHARS_PER_TOKEN:
        return text[: limit * CHARS_PER_TOKEN], "length"
    return text, "stop"


def token_logprobs(tokens: list[str], seed: int, top: int) -> list[dict[str, Any]]:
    """Per token: its logprob (the highest) and `top` alternatives ranked below it, deterministic per seed."""
    entries = []
    for position, token in enumerate(tokens):
        h = xxhash.xxh3_64_intdigest(token.encode(), seed=(seed + position) & 0xFFFF_FFFF_FFFF_FFFF)
        chosen = -round((h % 5000) / 10000 + 0.0001, 6)
        alternatives = []
        for rank, alt in enumerate(a for a in _ALTERNATIVES if a != token):
            if len(alternatives) >= top - 1:
                break
            drop = 1.0 + rank * 0.75 + (h >> (rank % 48) & 0xFF) / 1000
            alternatives.append(_token_entry(alt, round(chosen - drop, 6)))
        entry = _token_entry(token, chosen)
        entry["top_logprobs"] = [_token_entry(token, chosen), *alternatives] if top else []
        entries.append(entry)
    return entries


def _token_entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}
