"""Issue 10 (G): a hostile upstream cannot wedge the ledger. Every case answers through a raw loopback server
(bytes no HTTP library would write: headers that are not UTF-8, absurd usage, torn or invalid events); after
each one /healthz is 200, and every answer that was served has its receipt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from ledger_helpers import healthz, receipt_of
from raw_http import HostileUpstream, http_response, sse_response
from test_ledger_inputs import hostile_config

JSON = [(b"Content-Type", b"application/json")]


def completion(usage: Any = None, **extra: Any) -> bytes:
    obj = {
        "id": "chatcmpl-h",
        "object": "chat.completion",
        "created": 1,
        "model": "h",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi there"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7} if usage is None else usage,
        **extra,
    }
    return orjson.dumps(obj)


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    obj = {"id": "chatcmpl-h", "object": "chat.completion.chunk", "created": 1, "model": "h", **extra}
    obj.setdefault("choices", [{"index": 0, "delta": delta, "finish_reason": finish}])
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def events(usage: Any = None, content: bytes | None = None) -> list[bytes]:
    body = [chunk({"role": "assistant", "content": ""}), chunk({"content": "hi there"})]
    if content is not None:
        body.append(
            b'data: {"id":"chatcmpl-h","object":"chat.completion.chunk","choices":[{"index":0,"delta":'
            b'{"content":"' + content + b'"},"finish_reason":null}]}\n\n'
        )
    body.append(chunk({}, "stop"))
    u = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7} if usage is None else usage
    body.append(chunk({}, choices=[], usage=u))
    return [*body, b"data: [DONE]\n\n"]


HUGE = {"prompt_tokens": 10**13, "completion_tokens": 2, "total_tokens": 10**13 + 2}
INT64 = {"prompt_tokens": 5, "completion_tokens": 2**63 - 1, "total_tokens": 2**63 + 4}
U64 = {"prompt_tokens": 2**64 - 1, "completion_tokens": 2, "total_tokens": 1}
STRINGS = {"prompt_tokens": "8753", "completion_tokens": "2", "total_tokens": "8755"}
NEGATIVE = {"prompt_tokens": -5, "completion_tokens": -1, "total_tokens": -6}
FLOATY = {"prompt_tokens": 1e308, "completion_tokens": 0.5, "total_tokens": 1e308}
CACHED_PAST = {"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 10**12}}
BAD_ID = [(b"x-request-id", b"up-\xff\xfe\xc3(")]

# (name, stream?, raw response)
CASES: list[tuple[str, bool, bytes]] = [
    ("usage 10^13", False, http_response(200, JSON, completion(HUGE))),
    ("usage 2^63-1", False, http_response(200, JSON, completion(INT64))),
    ("usage 2^64-1", False, http_response(200, JSON, completion(U64))),
    ("usage strings", False, http_response(200, JSON, completion(STRINGS))),
    ("usage negative", False, http_response(200, JSON, completion(NEGATIVE))),
    ("usage 1e308 and a fraction", False, http_response(200, JSON, completion(FLOATY))),
    ("usage {}", False, http_response(200, JSON, completion({}))),
    ("usage a list", False, http_response(200, JSON, completion([1, 2]))),
    ("cached past the prompt", False, http_response(200, JSON, completion(CACHED_PAST))),
    ("x-request-id not UTF-8", False, http_response(200, [*JSON, *BAD_ID], completion())),
    (
        "every header not UTF-8",
        False,
        http_response(200, [*JSON, (b"x-a", b"\xe9t\xe9"), (b"x-b", b"\x80")], completion()),
    ),
    (
        "x-request-id 64 KB",
        False,
        http_response(200, [*JSON, (b"x-request-id", b"r" * 65_000)], completion()),
    ),
    ("response id 1 MB of non-ASCII", False, http_response(200, JSON, completion(id="é" * 500_000))),
    ("body not UTF-8", False, http_response(200, JSON, b'{"choices": "\xff\xfe"}')),
    ("error code 100 KB", False, http_response(500, JSON, orjson.dumps({"error": {"code": "E" * 100_000}}))),
    ("error body not JSON", False, http_response(502, JSON, b"\xff<html>gateway</html>")),
    ("stream usage 10^13", True, sse_response(events(HUGE))),
    ("stream usage 2^63-1", True, sse_response(events(INT64))),
    ("stream usage strings", True, sse_response(events(STRINGS))),
    ("stream usage {}", True, sse_response(events({}))),
    ("stream x-request-id not UTF-8", True, sse_response(events(), BAD_ID)),
    ("stream content not UTF-8", True, sse_response(events(content=b"\xff\xfe\xed\xa0\x80"))),
    ("stream id 1 MB", True, sse_response([chunk({"content": "x"}, id="i" * 1_000_000), *events()])),
    ("stream cut before [DONE]", True, sse_response(events(HUGE)[:3])),
]


@pytest.fixture
async def hostile_proxy(tmp_path: Path, start_proxy: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    answers: dict[str, bytes] = {}
    async with HostileUpstream(lambda _body: answers["next"]) as upstream:
        proxy = await start_proxy(hostile_config(tmp_path, upstream.port, monkeypatch))
        proxy.answers = answers
        yield proxy


async def test_no_upstream_answer_can_wedge_the_ledger(hostile_proxy: Any) -> None:
    proxy = hostile_proxy
    served: list[tuple[str, str]] = []
    async with aiohttp.ClientSession() as s:
        for name, stream, raw in CASES:
            proxy.answers["next"] = raw
            body = {"model": "h", "stream": stream, "messages": [{"role": "user", "content": "hello"}]}
            async with s.post(f"{proxy.base}/chat/completions", json=body) as r:
                data = await r.read()
                assert r.status < 500 or r.status in (500, 502), (name, r.status)  # upstream's own 5xx pass
                rid = r.headers.get("x-nextmodel-receipt-id")
                assert rid, name
                if r.status == 200 and (not stream or b"data: [DONE]" in data):
                    served.append((name, rid))
            status, health = await healthz(proxy)
            assert status == 200 and health["dead_letter"] == 0, (name, health)
    for name, rid in served:
        receipt = await receipt_of(proxy.base, rid)
        assert receipt["status"] == 200, name
        assert receipt["usage_source"] in ("upstream", "estimated"), name
        assert receipt["upstream_request_id"] is None or len(receipt["upstream_request_id"]) <= 128, name
    assert len(served) >= 20
    print(f"\nhostile upstream: {len(CASES)} cases, {len(served)} served, all with receipts; wedges 0")
