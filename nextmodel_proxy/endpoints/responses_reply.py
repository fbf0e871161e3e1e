"""chat.completion answers -> OpenAI Responses objects and events (pure state machines, no I/O)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from nextmodel_proxy.sse import event_json, is_done, named_event

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


def _resp_id(chat_id: Any) -> str:
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


def _finish(resp: dict[str, Any], finish_reason: Any, usage: Any) -> dict[str, Any]:
    reason = INCOMPLETE.get(str(finish_reason))
    resp["status"] = "incomplete" if reason else "completed"
    resp["incomplete_details"] = {"reason": reason} if reason else None
    resp["usage"] = usage_to_responses(usage)
    return resp


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if text else [],
    }


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}


def from_completion(obj: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
    """The Response object for a non-stream chat.completion."""
    rid = _resp_id(obj.get("id"))
    resp = skeleton(
        request, rid, str(obj.get("model") or request.get("model")), int(obj.get("created") or time.time())
    )
    choices = obj.get("choices") if isinstance(obj.get("choices"), list) else []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    suffix = rid.removeprefix("resp_")
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        resp["output"].append(_reasoning_item(f"rs_{suffix}", reasoning))
    text = message.get("content")
    if isinstance(text, str) and text:
        resp["output"].append(_message_item(f"msg_{suffix}", text, "completed"))
    for k, call in enumerate(message.get("tool_calls") or []):
        fn = call.get("function") or {}
        call_id = call.get("id") or f"call_{suffix}_{k}"
        resp["output"].append(
            _call_item(f"fc_{call_id}", call_id, fn.get("name") or "", fn.get("arguments") or "", "completed")
        )
    return _finish(resp, choice.get("finish_reason"), obj.get("usage"))


def error_event(code: str | None, message: str, param: str | None, seq: int) -> bytes:
    return named_event(
        "error", {"type": "error", "code": code, "message": message, "param": param, "sequence_number": seq}
    )


class ChatToResponsesStream:
    """Feed chat.completion.chunk events; get the Responses event lifecycle back."""

    __slots__ = (
        "done",
        "_request",
        "_resp",
        "_seq",
        "_text",
        "_calls",
        "_order",
        "_finish",
        "_usage",
        "_reasoning",
        "_started",
    )

    def __init__(self, request: Mapping[str, Any]) -> None:
        self.done = False
        self._request = request
        self._resp: dict[str, Any] | None = None
        self._seq = 0
        self._text: dict[str, Any] | None = None  # the open message item {index, id, text}
        self._reasoning: dict[str, Any] | None = None
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool index -> open call item state
        self._order: list[dict[str, Any]] = []  # output items in output order (state dicts)
        self._finish: Any = None
        self._usage: Any = None
        self._started = False

    def _ev(self, kind: str, **fields: Any) -> bytes:
        obj = {"type": kind, **fields, "sequence_number": self._seq}
        self._seq += 1
        return named_event(kind, obj)

    def feed(self, raw: bytes) -> list[bytes]:
        if self.done:
            return []
        if is_done(raw):
            return self._complete()
        obj = event_json(raw)
        if obj is None:
            return []
        out = self._start(obj)
        if isinstance(obj.get("error"), dict):
            err = obj["error"]
            self.done = True
            out += self._close_items()
            out.append(
                error_event(
                    err.get("code") or err.get("type"),
                    str(err.get("message") or "upstream error"),
                    err.get("param"),
                    self._seq,
                )
            )
            return out
        if isinstance(obj.get("usage"), dict):
            self._usage = obj["usage"]
        for choice in obj.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            if isinstance(delta.get("reasoning_content"), str) and delta["reasoning_content"]:
                out += self._reasoning_delta(delta["reasoning_content"])
            if isinstance(delta.get("content"), str) and delta["content"]:
                out += self._text_delta(delta["content"])
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict):
                    out += self._call_delta(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def end(self) -> list[bytes]:
        """The chat stream ended without [DONE]: nothing owed (the answer is incomplete)."""
        return []

    def _start(self, obj: Mapping[str, Any]) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        self._resp = skeleton(
            self._request,
            _resp_id(obj.get("id")),
            str(obj.get("model") or self._request.get("model")),
            int(obj.get("created") or time.time()),
        )
        return [
            self._ev("response.created", response=self._resp),
            self._ev("response.in_progress", response=self._resp),
        ]

    def _suffix(self) -> str:
        assert self._resp is not None
        return self._resp["id"].removeprefix("resp_")

    def _reasoning_delta(self, text: str) -> list[bytes]:
        out = []
        if self._reasoning is None:
            self._reasoning = {
                "kind": "reasoning",
                "index": len(self._order),
                "id": f"rs_{self._suffix()}",
                "text": "",
            }
            self._order.append(self._reasoning)
            item = {"id": self._reasoning["id"], "type": "reasoning", "summary": []}
            out.append(
                self._ev("response.output_item.added", output_index=self._reasoning["index"], item=item)
            )
            out.append(
                self._ev(
                    "response.reasoning_summary_part.added",
                    item_id=item["id"],
                    output_index=self._reasoning["index"],
                    summary_index=0,
                    part={"type": "summary_text", "text": ""},
                )
            )
        self._reasoning["text"] += text
        out.append(
            self._ev(
                "response.reasoning_summary_text.delta",
                item_id=self._reasoning["id"],
                output_index=self._reasoning["index"],
                summary_index=0,
                delta=text,
            )
        )
        return out

    def _text_delta(self, text: str) -> list[bytes]:
        out = []
        if self._text is None:
            self._text = {
                "kind": "message",
                "index": len(self._order),
                "id": f"msg_{self._suffix()}",
                "text": "",
            }
            self._order.append(self._text)
            out.append(
                self._ev(
                    "response.output_item.added",
                    output_index=self._text["index"],
                    item=_message_item(self._text["id"], "", "in_progress"),
                )
            )
            out.append(
                self._ev(
                    "response.content_part.added",
                    item_id=self._text["id"],
                    output_index=self._text["index"],
                    content_index=0,
                    part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                )
            )
        self._text["text"] += text
        out.append(
            self._ev(
                "response.output_text.delta",
                item_id=self._text["id"],
                output_index=self._text["index"],
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return out

    def _call_delta(self, call: Mapping[str, Any]) -> list[bytes]:
        index = call.get("index", 0)
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        state = self._calls.get(index)
        out = []
        if state is None:
            call_id = call.get("id") or f"call_{self._suffix()}_{index}"
            state = {
                "kind": "function_call",
                "index": len(self._order),
                "id": f"fc_{call_id}",
                "call_id": call_id,
                "name": fn.get("name") or "",
                "arguments": "",
            }
            self._calls[index] = state
            self._order.append(state)
            out.append(
                self._ev(
                    "response.output_item.added",
                    output_index=state["index"],
                    item=_call_item(state["id"], call_id, state["name"], "", "in_progress"),
                )
            )
        elif fn.get("name") and not state["name"]:
            state["name"] = fn["name"]
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            state["arguments"] += args
            out.append(
                self._ev(
                    "response.function_call_arguments.delta",
                    item_id=state["id"],
                    output_index=state["index"],
                    delta=args,
                )
            )
        return out

    def _close_items(self) -> list[bytes]:
        out = []
        for state in self._order:
            if state.get("closed"):
                continue
            state["closed"] = True
            index = state["index"]
            if state["kind"] == "message":
                part = {"type": "output_text", "text": state["text"], "annotations": [], "logprobs": []}
                out.append(
                    self._ev(
                        "response.output_text.done",
                        item_id=state["id"],
                        output_index=index,
                        content_index=0,
                        text=state["text"],
                        logprobs=[],
                    )
                )
                out.append(
                    self._ev(
                        "response.content_part.done",
                        item_id=state["id"],
                        output_index=index,
                        content_index=0,
                        part=part,
                    )
                )
                item = _message_item(state["id"], state["text"], "completed")
            elif state["kind"] == "reasoning":
                part = {"type": "summary_text", "text": state["text"]}
                out.append(
                    self._ev(
                        "response.reasoning_summary_text.done",
                        item_id=state["id"],
                        output_index=index,
                        summary_index=0,
                        text=state["text"],
                    )
                )
                out.append(
                    self._ev(
                        "response.reasoning_summary_part.done",
                        item_id=state["id"],
                        output_index=index,
                        summary_index=0,
                        part=part,
                    )
                )
                item = _reasoning_item(state["id"], state["text"])
            else:
                out.append(
                    self._ev(
                        "response.function_call_arguments.done",
                        item_id=state["id"],
                        output_index=index,
                        name=state["name"],
                        arguments=state["arguments"],
                    )
                )
                item = _call_item(
                    state["id"], state["call_id"], state["name"], state["arguments"], "completed"
                )
            state["item"] = item
            out.append(self._ev("response.output_item.done", output_index=index, item=item))
        return out

    def _complete(self) -> list[bytes]:
        self.done = True
        if self._finish is None:  # [DONE] without a finish reason: the answer was cut
            return []
        out = self._start({})
        out += self._close_items()
        assert self._resp is not None
        resp = {**self._resp, "output": [s["item"] for s in self._order]}
        _finish(resp, self._finish, self._usage)
        kind = "response.incomplete" if resp["status"] == "incomplete" else "response.completed"
        out.append(self._ev(kind, response=resp))
        return out


def from_completion_bytes(raw: bytes, request: Mapping[str, Any]) -> bytes:
    return orjson.dumps(from_completion(orjson.loads(raw), request))
