"""kind: demo — deterministic offline replies so `make run` and a copied curl work with no keys or network."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson
import xxhash

from nextmodel_proxy.sse import DONE, data_event
from nextmodel_proxy.upstream.base import Target

_JSON = {"Content-Type": "application/json"}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def prompt_tokens(messages: Any) -> int:
    """A realistic-looking count: ~4 characters a token plus OpenAI's per-message overhead."""
    if not isinstance(messages, list):
        return 1
    total = 3
    for msg in messages:
        if isinstance(msg, dict):
            total += 4 + (len(_text_of(msg.get("content"))) + 3) // 4
    return total


def _reply_text(body: Mapping[str, Any]) -> str:
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    last = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), None)
    asked = _text_of(last.get("content")) if last else ""
    digest = xxhash.xxh3_64_hexdigest(orjson.dumps(messages, option=orjson.OPT_SORT_KEYS))[:8]
    rf = body.get("response_format")
    if isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema"):
        return orjson.dumps({"demo": True, "echo": asked[:200], "digest": digest}).decode()
    snippet = " ".join(asked.split()[:24]) or "(no user message)"
    return (
        f"This is a demo reply from NextModel Proxy (no upstream was called). You said: {snippet} [{digest}]"
    )


def _tool_call(body: Mapping[str, Any]) -> dict[str, Any] | None:
    tools = body.get("tools")
    choice = body.get("tool_choice", "auto")
    if not isinstance(tools, list) or not tools or choice == "none":
        return None
    name = None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
    first = tools[0].get("function", {}) if isinstance(tools[0], dict) else {}
    name = name or first.get("name") or "tool"
    digest = xxhash.xxh3_64_hexdigest(orjson.dumps(body.get("messages"), option=orjson.OPT_SORT_KEYS))
    return {
        "id": f"call_demo{digest[:16]}",
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps({"demo": True}).decode()},
    }


class DemoCall:
    """A synthetic upstream answer built in memory."""

    __slots__ = (
        "status",
        "headers",
        "is_stream",
        "upstream_request_id",
        "_body",
        "_target",
        "_include_usage",
        "_endpoint",
    )

    def __init__(self, target: Target, body: dict[str, Any], endpoint: str) -> None:
        self._target = target
        self._body = body
        self.status = 200
        self.is_stream = bool(body.get("stream")) and endpoint == "chat"
        self.headers = {"Content-Type": "text/event-stream" if self.is_stream else "application/json"}
        seed = xxhash.xxh3_64_hexdigest(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
        self.upstream_request_id = f"demo-{seed[:16]}"
        opts = body.get("stream_options")
        self._include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
        self._endpoint = endpoint

    def _base(self, obj: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{self.upstream_request_id}",
            "object": obj,
            "created": int(time.time()),
            "model": self._target.model.upstream_id,
            "system_fingerprint": "fp_demo",
        }

    def _usage(self, completion_text: str) -> dict[str, int]:
        p = prompt_tokens(self._body.get("messages"))
        c = max(1, (len(completion_text) + 3) // 4)
        return {
            "prompt_tokens": p,
            "completion_tokens": c,
            "total_tokens": p + c,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }

    async def read(self) -> bytes:
        if self._endpoint == "embeddings":
            return self._embeddings()
        call = _tool_call(self._body)
        text = "" if call else _reply_text(self._body)
        message: dict[str, Any] = {"role": "assistant", "content": None if call else text, "refusal": None}
        if call:
            message["tool_calls"] = [call]
        obj = self._base("chat.completion")
        obj["choices"] = [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if call else "stop",
            }
        ]
        obj["usage"] = self._usage(text or call["function"]["arguments"])
        return orjson.dumps(obj)

    def _embeddings(self) -> bytes:
        inputs = self._body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data, tokens = [], 0
        for i, item in enumerate(items):
            text = item if isinstance(item, str) else orjson.dumps(item).decode()
            tokens += max(1, (len(text) + 3) // 4)
            h = xxhash.xxh3_128_digest(text.encode())
            data.append(
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": [round((b - 127.5) / 127.5, 6) for b in h[:8]],
                }
            )
        return orjson.dumps(
            {
                "object": "list",
                "data": data,
                "model": self._target.model.upstream_id,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def events(self) -> AsyncIterator[bytes]:
        call = _tool_call(self._body)
        base = self._base("chat.completion.chunk")

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return data_event(
                {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            )

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        if call:
            yield chunk(
                {"tool_calls": [{"index": 0, **call, "function": {**call["function"], "arguments": ""}}]}
            )
            yield chunk(
                {"tool_calls": [{"index": 0, "function": {"arguments": call["function"]["arguments"]}}]}
            )
            text = call["function"]["arguments"]
        else:
            text = _reply_text(self._body)
            words = text.split(" ")
            for i, word in enumerate(words):
                yield chunk({"content": word if i == 0 else " " + word})
        yield chunk({}, "tool_calls" if call else "stop")
        if self._include_usage:
            yield data_event({**base, "choices": [], "usage": self._usage(text)})
        yield DONE

    def release(self) -> None:
        return None


class DemoAdapter:
    """Answers locally; never touches the network."""

    async def open(
        self,
        session: aiohttp.ClientSession,
        target: Target,
        body: dict[str, Any],
        *,
        endpoint: str,
        client_headers: Mapping[str, str],
    ) -> DemoCall:
        return DemoCall(target, body, endpoint)
