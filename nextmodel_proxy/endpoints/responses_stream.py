"""chat.completion.chunk events -> the OpenAI Responses event lifecycle (a pure state machine, no I/O)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from nextmodel_proxy.endpoints import responses_reply as rr
from nextmodel_proxy.endpoints.chat_chunks import ChatStreamTranslator
from nextmodel_proxy.sse import named_event


class ChatToResponsesStream(ChatStreamTranslator):
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

    def _error(self, err: Mapping[str, Any]) -> list[bytes]:
        out = self._close_items()
        code = err.get("code") or err.get("type")
        message = str(err.get("message") or "upstream error")
        return [*out, rr.error_event(code, message, err.get("param"), self._seq)]

    def _part(self, kind: str, value: Any) -> list[bytes]:
        if kind == "reasoning":
            return self._reasoning_delta(value)
        if kind == "text":
            return self._text_delta(value)
        if kind == "call":
            return self._call_delta(value)
        if kind == "usage":
            self._usage = value
        else:
            self._finish = value
        return []

    def _start(self, obj: Mapping[str, Any]) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        self._resp = rr.skeleton(
            self._request,
            rr.resp_id(obj.get("id")),
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
                    item=rr.message_item(self._text["id"], "", "in_progress"),
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
                    item=rr.call_item(state["id"], call_id, state["name"], "", "in_progress"),
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
                item = rr.message_item(state["id"], state["text"], "completed")
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
                item = rr.reasoning_item(state["id"], state["text"])
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
                item = rr.call_item(
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
        rr.finish(resp, self._finish, self._usage)
        kind = "response.incomplete" if resp["status"] == "incomplete" else "response.completed"
        out.append(self._ev(kind, response=resp))
        return out
