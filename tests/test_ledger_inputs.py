"""Issue 10 (B): everything written to the ledger is valid by construction. Attribution headers that are not
printable UTF-8 (or too long) get a 400 naming the header; request ids, client or upstream, are stored
escaped; every receipt has a request_id, echoed as x-request-id."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from ledger_helpers import healthz, receipt_of
from raw_http import HostileUpstream, http_response, raw_request

from nextmodel_proxy.config import load_config

CHAT = orjson.dumps({"model": "gpt-test", "messages": [{"role": "user", "content": "hello there world"}]})
JSON_HEADERS = [(b"Content-Type", b"application/json")]


@pytest.mark.parametrize(
    ("header", "value", "problem"),
    [
        (b"x-nextmodel-project", b"web\xff\xfe", "not printable UTF-8"),
        (b"x-nextmodel-team", b"gr\xc3owth", "not printable UTF-8"),
        (b"x-nextmodel-environment", b"stag\ting", "not printable UTF-8"),
        (b"x-nextmodel-tags", b"ok, bad\xed\xa0\x80", "not printable UTF-8"),
        (b"x-nextmodel-project", b"p" * 129, "longer than 128"),
        (b"x-nextmodel-tags", b"t" * 1025, "longer than 1024"),
        (b"x-nextmodel-tags", b"a, " + b"t" * 129, "tag longer than 128"),
    ],
)
async def test_bad_attribution_header_is_a_400_naming_it(
    proxy: Any, header: bytes, value: bytes, problem: str
) -> None:
    status, _, body = await raw_request(
        proxy.port, "/v1/chat/completions", [*JSON_HEADERS, (header, value)], CHAT
    )
    error = orjson.loads(body)["error"]
    assert (status, error["code"], error["param"]) == (400, "invalid_header", header.decode())
    assert problem in error["message"] and header.decode() in error["message"]
    assert (await healthz(proxy))[0] == 200
    status, _, _ = await raw_request(proxy.port, "/v1/chat/completions", JSON_HEADERS, CHAT)
    assert status == 200


async def test_unicode_attribution_is_kept_as_sent(proxy: Any) -> None:
    headers = [
        *JSON_HEADERS,
        (b"x-nextmodel-project", "café-東京".encode()),
        (b"x-nextmodel-tags", "α, β".encode()),
    ]
    status, out, _ = await raw_request(proxy.port, "/v1/chat/completions", headers, CHAT)
    assert status == 200
    r = await receipt_of(proxy.base, out["x-nextmodel-receipt-id"].decode())
    assert (r["project"], r["tags"]) == ("café-東京", ["α", "β"])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("name", [b"x-request-id", b"x-client-request-id"])
async def test_client_request_ids_are_stored_escaped_and_echoed(
    proxy: Any, name: bytes, stream: bool
) -> None:
    body = orjson.dumps({**orjson.loads(CHAT), "stream": stream})
    cases = [(b"req-\xff\xfe-1", "req-\\xff\\xfe-1"), (b"ok-id-7", "ok-id-7"), (b"a\tb", "a\\tb")]
    for sent, stored in cases:
        status, out, _ = await raw_request(
            proxy.port, "/v1/chat/completions", [*JSON_HEADERS, (name, sent)], body
        )
        assert status == 200
        assert out["x-request-id"] == stored.encode()
        r = await receipt_of(proxy.base, out["x-nextmodel-receipt-id"].decode())
        assert r["request_id"] == stored
    status, out, _ = await raw_request(
        proxy.port, "/v1/chat/completions", [*JSON_HEADERS, (name, b"x" * 300)], body
    )
    r = await receipt_of(proxy.base, out["x-nextmodel-receipt-id"].decode())
    assert r["request_id"] == "x" * 128 == out["x-request-id"].decode()
    assert (await healthz(proxy))[0] == 200


async def test_every_receipt_gets_a_request_id(proxy: Any) -> None:
    async with aiohttp.ClientSession() as s:
        for model in ("gpt-test", "no-such-model"):  # a fresh answer and a refusal
            async with s.post(
                f"{proxy.base}/chat/completions", data=CHAT.replace(b"gpt-test", model.encode())
            ) as r:
                request_id = r.headers["x-request-id"]
                assert re.fullmatch(r"req_[0-9a-f]{24}", request_id), request_id
                receipt = await receipt_of(proxy.base, r.headers["x-nextmodel-receipt-id"])
                assert receipt["request_id"] == request_id


HOSTILE_YAML = """
server: {{host: 127.0.0.1, port: 0}}
ledger: {{path: {db}}}
providers:
  hostile: {{kind: openai, base_url: "http://127.0.0.1:{port}/v1", api_key_env: NMPROXY_TEST_FAKE_KEY, max_retries: 0}}
models:
  h: {{provider: hostile, price: {{input: 1, output: 2}}}}
"""


def hostile_config(tmp_path: Path, port: int, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("NMPROXY_TEST_FAKE_KEY", "sk-upstream-secret")
    path = tmp_path / "hostile.yaml"
    path.write_text(HOSTILE_YAML.format(db=tmp_path / "ledger.db", port=port))
    return load_config(path)


COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "h",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
)


async def test_upstream_request_id_with_bad_bytes_is_stored_escaped(
    tmp_path: Path, start_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = [
        (b"Content-Type", b"application/json"),
        (b"x-request-id", b"up-\xff\xfe"),
        (b"x-odd", b"\xc3("),
    ]
    async with HostileUpstream(lambda _body: http_response(200, headers, COMPLETION)) as upstream:
        proxy = await start_proxy(hostile_config(tmp_path, upstream.port, monkeypatch))
        status, out, body = await raw_request(
            proxy.port, "/v1/chat/completions", JSON_HEADERS, CHAT.replace(b"gpt-test", b"h")
        )
        assert status == 200 and orjson.loads(body)["choices"][0]["message"]["content"] == "hi"
        assert out["x-odd"] == b"\\xc3("  # relayed escaped, never a 500
        r = await receipt_of(proxy.base, out["x-nextmodel-receipt-id"].decode())
        assert r["upstream_request_id"] == "up-\\xff\\xfe"
        assert (await healthz(proxy))[0] == 200
