"""The demo adapter: renders an Answer (or embeddings, or a 400) in OpenAI's JSON and SSE shapes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Mapping
from itertools import zip_longest
from typing import Any

import aiohttp
import orjson
import xxhash

from nextmodel_proxy.errors import error_body
from nextmodel_proxy.sse import DONE, data_event
from nextmodel_proxy.upstream.base import Target
from nextmodel_proxy.upstream.demo import answer, completion, embed
from nextmodel_proxy.upstream.demo.answer import Answer, Choice, DemoInputError

_ARGUMENT_PIECE = 16  # characters of tool-call arguments per stream chunk


_CHECKS = {"embeddings": embed.check, "completions": completion.check}


class DemoCall:
    """A synthetic upstream answer built in memory."""

    __slots__ = (
        "status", "headers", "is_stream", "upstream_request_id", "_body", "_target", "_endpoint", "_error",
    )  # fmt: skip

    def __init__(self, target: Target, body: dict[str, Any], endpoint: str) -> None:
        self._target = target
        self._body = body
        self._endpoint = endpoint
        self.status = 200
        self.is_stream = bool(body.get("stream")) and endpoint in ("chat", "completions")
        seed = xxhash.xxh3_64_hexdigest(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
        self.upstream_request_id = f"demo-{seed[:16]}"
        try:
            _CHECKS.get(endpoint, answer.check)(body)
            self._error: bytes | None = None
        except DemoInputError as exc:
            self.status, self.is_stream = 400, False
            self._error = error_body(exc.message, "invalid_request_error", "invalid_value", exc.param)
        self.headers = {"Content-Type": "text/event-stream" if self.is_stream else "application/json"}

    def _base(self, obj: str, prefix: str = "chatcmpl") -> dict[str, Any]:
        return {
            "id": f"{prefix}-{self.upstream_request_id}",
            "object": obj,
            "created": int(time.time()),
            "model": self._target.model.upstream_id,
            "system_fingerprint": "fp_demo",
        }

    async def read(self) -> bytes:
        if self._error is not None:
            return self._error
        if self._endpoint == "embeddings":
            return orjson.dumps(embed.embeddings(self._body, self._target.model.upstream_id))
        if self._endpoint == "completions":
            choices, usage = completion.completion(self._body)
            return orjson.dumps({**self._base("text_completion", "cmpl"), "choices": choices, "usage": usage})
        reply = Answer(self._body)
        obj = self._base("chat.completion")
        obj["choices"] = [_json_choice(c) for c in reply.choices]
        obj["usage"] = reply.usage()
        return orjson.dumps(obj)

    async def events(self) -> AsyncIterator[bytes]:
        if self._endpoint == "completions":
            choices, usage = completion.completion({**self._body, "logprobs": None})
            base = self._base("text_completion", "cmpl")
            per_choice = [_completion_pieces(c) for c in choices]
        else:
            reply = Answer(self._body)
            base, usage = self._base("chat.completion.chunk"), reply.usage()
            per_choice = [list(_deltas(c)) for c in reply.choices]
        for row in zip_longest(*per_choice):  # choices interleaved, as n > 1 streams arrive
            for item in row:
                if item is not None:
                    yield data_event({**base, "choices": [item]})
        opts = self._body.get("stream_options")
        if isinstance(opts, dict) and opts.get("include_usage"):
            yield data_event({**base, "choices": [], "usage": usage})
        yield DONE

    def release(self) -> None:
        return None


def _completion_pieces(c: dict[str, Any]) -> list[dict[str, Any]]:
    """Legacy completion stream choices: the text a token at a time, then the finish_reason."""
    pieces = [
        {"text": t, "index": c["index"], "logprobs": None, "finish_reason": None}
        for t in answer.split_tokens(c["text"])
    ]
    pieces.append({"text": "", "index": c["index"], "logprobs": None, "finish_reason": c["finish_reason"]})
    return pieces


def _json_choice(c: Choice) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": c.content, "refusal": None}
    if c.call is not None:
        message["tool_calls"] = [c.call]
    return {"index": c.index, "message": message, "logprobs": c.logprobs, "finish_reason": c.finish}


def _deltas(c: Choice) -> Iterator[dict[str, Any]]:
    """The stream choices of one answer choice: role, content tokens or tool-call pieces, then finish."""

    def item(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> dict[str, Any]:
        return {"index": c.index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}

    yield item({"role": "assistant", "content": "" if c.call is None else None, "refusal": None})
    if c.call is not None:
        fn = c.call["function"]
        head = {
            "index": 0,
            "id": c.call["id"],
            "type": "function",
            "function": {"name": fn["name"], "arguments": ""},
        }
        yield item({"tool_calls": [head]})
        args = fn["arguments"]
        for i in range(0, len(args), _ARGUMENT_PIECE):
            yield item(
                {"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + _ARGUMENT_PIECE]}}]}
            )
    else:
        entries = c.logprobs["content"] if c.logprobs else None
        for i, token in enumerate(c.tokens):
            lp = {"content": [entries[i]], "refusal": None} if entries else None
            yield item({"content": token}, logprobs=lp)
    yield item({}, c.finish)


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
