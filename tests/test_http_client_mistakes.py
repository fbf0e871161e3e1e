"""Client mistakes answered as 4xx (never a 500), HTTP/1.0 streaming, hop-by-hop headers, over a real loopback proxy."""

from __future__ import annotations

import asyncio
import gzip
import logging
import sqlite3
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from nextmodel_proxy.access.keys import KeySettings, create_key
from nextmodel_proxy.ledger import schema as db

CHAT = orjson.dumps({"model": "fake-basic", "messages": [{"role": "user", "content": "hi there"}]})
STREAM = orjson.dumps(
    {"model": "fake-basic", "messages": [{"role": "user", "content": "hi there"}], "stream": True}
)


async def raw_exchange(port: int, request: bytes, *, limit_s: float = 10) -> bytes:
    """Send raw bytes on a fresh loopback connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), limit_s)
    finally:
        writer.close()


def receipts(db_path: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM receipts ORDER BY created_utc").fetchall()
    finally:
        conn.close()


async def wait_for_receipts(db_path: str, n: int) -> list[sqlite3.Row]:
    for _ in range(200):  # bounded: 10 s
        rows = receipts(db_path) if Path(db_path).exists() else []
        if len(rows) >= n:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {n} receipts, found {len(rows)}")


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_body_not_what_its_content_encoding_says_is_a_400(proxy: Any, encoding: str) -> None:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        async with s.post(
            proxy.base + "/chat/completions",
            data=CHAT,
            headers={"Content-Encoding": encoding, "Content-Type": "application/json"},
        ) as r:
            assert r.status == 400
            err = (await r.json())["error"]
    assert err["code"] == "invalid_body"
    assert encoding in err["message"]


@pytest.mark.parametrize(
    "encoding,compress", [("gzip", gzip.compress), ("deflate", zlib.compress)], ids=["gzip", "deflate"]
)
async def test_a_truly_compressed_body_is_served(proxy: Any, encoding: str, compress: Any) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(
            proxy.base + "/chat/completions",
            data=compress(CHAT),
            headers={"Content-Encoding": encoding, "Content-Type": "application/json"},
        ) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["object"] == "chat.completion"


async def test_undecodable_authorization_in_key_mode_is_a_401_without_a_traceback(
    write_config: Any, start_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config()
    conn = db.open_db(config.ledger.path)
    try:
        create_key(conn, KeySettings(project="web"))
    finally:
        conn.close()
    proxy = await start_proxy(config)
    caplog.set_level(logging.DEBUG)
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Authorization: Bearer nm-\xff\xfe\xc3(\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(CHAT)).encode() + b"\r\n\r\n" + CHAT
    )
    answer = await raw_exchange(proxy.port, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), head
    assert orjson.loads(body)["error"]["code"] == "invalid_api_key"
    assert not [r for r in caplog.records if r.exc_info], "a client mistake must not log a traceback"


async def test_undecodable_authorization_in_open_mode_is_ignored(proxy: Any) -> None:
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Authorization: Bearer \xff\xfe\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(CHAT)).encode() + b"\r\n\r\n" + CHAT
    )
    answer = await raw_exchange(proxy.port, request)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


async def test_http10_stream_is_sent_plain_and_the_connection_closed(proxy: Any, write_config: Any) -> None:
    request = (
        b"POST /v1/chat/completions HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(STREAM)).encode() + b"\r\n\r\n" + STREAM
    )
    answer = await raw_exchange(proxy.port, request)  # returns only once the server closed the connection
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head
    assert b"transfer-encoding" not in head.lower()
    assert b"text/event-stream" in head
    events = [e for e in body.split(b"\n\n") if e.startswith(b"data: ")]
    assert events[-1] == b"data: [DONE]"
    assert any(b"chat.completion.chunk" in e for e in events)
    rows = await wait_for_receipts(write_config().ledger.path, 1)
    assert rows[0]["status"] == 200 and rows[0]["error_code"] is None


async def test_http10_non_stream_still_served(proxy: Any) -> None:
    request = (
        b"POST /v1/chat/completions HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(CHAT)).encode() + b"\r\n\r\n" + CHAT
    )
    answer = await raw_exchange(proxy.port, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0]
    assert orjson.loads(body)["object"] == "chat.completion"


async def test_headers_named_in_connection_are_not_forwarded(proxy: Any, fake_upstream: Any) -> None:
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Connection: close, X-Hop-One\r\nConnection: x-hop-two\r\n"
        b"X-Hop-One: secret-1\r\nX-Hop-Two: secret-2\r\nX-Kept: yes\r\nX-Bytes: \xff\xfe\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(len(CHAT)).encode() + b"\r\n\r\n" + CHAT
    )
    answer = await raw_exchange(proxy.port, request)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    sent = {k.lower(): v for k, v in fake_upstream.state.headers[-1].items()}
    assert sent.get("x-kept") == "yes"
    assert "x-hop-one" not in sent and "x-hop-two" not in sent
    assert sent["x-bytes"] == "\\xff\\xfe"  # bytes that are not UTF-8 go on escaped


async def test_a_model_without_mode_serves_both_endpoints_and_mode_restricts(client: Any) -> None:
    emb = await client.embeddings.create(model="fake-basic", input="hello")
    assert emb.data and emb.data[0].embedding
    chat = await client.chat.completions.create(
        model="fake-basic", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.choices[0].message.content
    import openai

    with pytest.raises(openai.BadRequestError) as info:  # mode: embedding still restricts
        await client.chat.completions.create(model="fake-embed", messages=[{"role": "user", "content": "hi"}])
    assert "/v1/embeddings" in info.value.body["message"]


@pytest.mark.parametrize(
    "line",
    [b"POST /v1/chat/completions", b"PUT /v1/embeddings", b"POST /v1/nowhere"],
    ids=["ok", "405", "404"],
)
async def test_an_unknown_expect_value_is_a_417_even_in_bytes_that_are_not_utf8(
    proxy: Any, line: bytes
) -> None:
    request = (
        line + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nExpect: \xf1\x9f\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + str(len(CHAT)).encode() + b"\r\n\r\n" + CHAT
    )
    answer = await raw_exchange(proxy.port, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 417"), answer[:300]
    assert orjson.loads(body)["error"]["code"] == "expectation_failed"
