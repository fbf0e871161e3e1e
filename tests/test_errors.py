"""Every error the proxy produces has OpenAI's shape and a fitting status; nothing answers 500."""

from __future__ import annotations

import aiohttp
import pytest

ERROR_KEYS = {"message", "type", "param", "code"}


async def _post(url: str, data: bytes | str, headers: dict | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s, s.post(url, data=data, headers=headers) as r:
        return r.status, await r.json(content_type=None)


@pytest.mark.parametrize(
    ("payload", "status", "code", "param"),
    [
        (b"{not json", 400, "invalid_json", None),
        (b"", 400, "invalid_body", None),
        (b"[1, 2]", 400, "invalid_body", None),
        (b'"text"', 400, "invalid_body", None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "missing_field", "model"),
        (b'{"model": 42, "messages": []}', 400, "invalid_type", "model"),
        (b'{"model": "gpt-test"}', 400, "missing_field", "messages"),
        (b'{"model": "gpt-test", "messages": "hi"}', 400, "invalid_type", "messages"),
        (b'{"model": "gpt-test", "messages": [1]}', 400, "invalid_type", "messages[0]"),
        (
            b'{"model": "gpt-test", "messages": [{"role": "user"}], "stream": "yes"}',
            400,
            "invalid_type",
            "stream",
        ),
        (
            b'{"model": "gpt-test", "messages": [{"role": "user"}], "temperature": "hot"}',
            400,
            "invalid_type",
            "temperature",
        ),
        (
            b'{"model": "gpt-test", "messages": [{"role": "user"}], "max_tokens": 0}',
            400,
            "invalid_value",
            "max_tokens",
        ),
        (b'{"model": "fake-embed", "messages": [{"role": "user"}]}', 400, "invalid_value", "model"),
        (b'{"model": "nope", "messages": [{"role": "user"}]}', 404, "model_not_found", "model"),
    ],
)
async def test_bad_chat_input_gets_openai_shaped_error(proxy, payload, status, code, param):
    got_status, body = await _post(proxy.base + "/chat/completions", payload)
    assert got_status == status
    assert set(body["error"]) == ERROR_KEYS
    assert body["error"]["code"] == code
    assert body["error"]["param"] == param
    assert body["error"]["type"] == "invalid_request_error"


async def test_embeddings_without_input_is_400(proxy):
    status, body = await _post(proxy.base + "/embeddings", b'{"model": "fake-embed"}')
    assert (status, body["error"]["code"], body["error"]["param"]) == (400, "missing_field", "input")


async def test_body_over_limit_is_413(write_config, start_proxy):
    config = write_config()
    from dataclasses import replace

    small = replace(config, server=replace(config.server, max_body_bytes=2048))
    proxy = await start_proxy(small)
    status, body = await _post(
        proxy.base + "/chat/completions",
        b'{"model": "gpt-test", "messages": [{"role": "user", "content": "' + b"x" * 5000 + b'"}]}',
    )
    assert status == 413
    assert body["error"]["code"] == "body_too_large"


async def test_unknown_path_and_method_are_shaped_404_and_405(proxy):
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.base + "/nothing-here") as r:
            assert r.status == 404
            assert (await r.json())["error"]["code"] == "not_found"
        async with s.delete(proxy.base + "/chat/completions") as r:
            assert r.status == 405
            assert (await r.json())["error"]["code"] == "method_not_allowed"
            assert "POST" in r.headers["Allow"]


async def test_proxy_keeps_serving_after_garbage(proxy, client):
    for junk in (b"\xff\xfe", b"{" * 10000, b"null", b'{"model": null}'):
        status, _ = await _post(proxy.base + "/chat/completions", junk)
        assert 400 <= status < 500
    ok = await client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "alive"}]
    )
    assert ok.choices[0].message.content == "Echo: alive"
