"""`nmproxy serve` as a real process on loopback: slow senders, the connection cap, log lines, shutdown grace."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from conftest import free_port

NMPROXY = str(Path(sys.executable).with_name("nmproxy"))
CHAT = orjson.dumps({"model": "fake-basic", "messages": [{"role": "user", "content": "hello body text"}]})


class Proc:
    def __init__(self, proc: asyncio.subprocess.Process, port: int, db: str) -> None:
        self.proc, self.port, self.db = proc, port, db
        self.base = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> str:
        """SIGTERM, wait (bounded) for the exit, return everything it logged."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(self.proc.communicate(), 30)
        return err.decode()


@asynccontextmanager
async def serving(write_config: Any, server: str, *args: str) -> AsyncIterator[Proc]:
    config = write_config()
    path = Path(config.source_path)
    port = free_port()
    text = path.read_text().replace(
        "server: {host: 127.0.0.1, port: 0, keepalive_s: 15}",
        f"server: {{host: 127.0.0.1, port: {port}, keepalive_s: 15, {server}}}",
    )
    assert str(port) in text
    path.write_text(text)
    proc = await asyncio.create_subprocess_exec(
        NMPROXY,
        "serve",
        "--config",
        str(path),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NMPROXY_TEST_FAKE_KEY": "sk-upstream-secret"},
    )
    p = Proc(proc, port, config.ledger.path)
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(300):  # bounded: 15 s to start
                try:
                    async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                if proc.returncode is not None:
                    raise AssertionError("nmproxy serve exited: " + (await proc.stderr.read()).decode())
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("nmproxy serve did not start")
        yield p
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def read_all(reader: asyncio.StreamReader, limit_s: float = 10) -> bytes:
    return await asyncio.wait_for(reader.read(), limit_s)


async def test_slow_headers_and_slow_body_get_408_and_are_closed(write_config: Any) -> None:
    async with serving(write_config, "header_timeout_s: 0.3, body_timeout_s: 0.3") as p:
        # headers that never finish
        reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        answer = await read_all(reader)  # returns only when the proxy closed the connection
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert orjson.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"
        # a connection that sends nothing at all
        reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
        answer = await read_all(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer
        # a body that stops half way
        reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(CHAT)).encode() + b"\r\n\r\n" + CHAT[:10]
        )
        answer = await read_all(reader, 30)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b'"code":"request_timeout"' in answer
        # and the proxy still serves
        async with aiohttp.ClientSession() as s:
            async with s.post(p.base + "/chat/completions", data=CHAT) as r:
                assert r.status == 200
            async with s.get(f"http://127.0.0.1:{p.port}/healthz") as r:
                assert r.status == 200
        await p.stop()


async def test_connections_past_the_cap_get_a_clean_503(write_config: Any, fake_upstream: Any) -> None:
    fake_upstream.state.silent_s = 1.5
    body = orjson.dumps(
        {"model": "fake-silent", "stream": True, "messages": [{"role": "user", "content": "hold on"}]}
    )
    async with serving(write_config, "max_connections: 3") as p:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            held = []
            for _ in range(3):  # three streams, each holding its connection while upstream is silent
                r = await s.post(p.base + "/chat/completions", data=body)
                assert r.status == 200
                await r.content.readline()
                held.append(r)
            reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = await read_all(reader)
            writer.close()
            head, _, err = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503"), answer
            assert b"Retry-After: 1" in head
            assert orjson.loads(err)["error"]["code"] == "server_busy"
            for r in held:  # the held streams finish normally
                text = await asyncio.wait_for(r.text(), 20)
                assert text.rstrip().endswith("data: [DONE]")
                r.release()
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{p.port}/healthz") as r:
                assert r.status == 200
        await p.stop()


async def test_one_json_log_line_per_request_and_at_start_and_stop(write_config: Any) -> None:
    async with serving(write_config, "header_timeout_s: 5", "--log-format", "json") as p:
        async with aiohttp.ClientSession() as s:
            async with s.post(
                p.base + "/chat/completions", data=CHAT, headers={"Authorization": "Bearer sk-client-secret"}
            ) as r:
                assert r.status == 200
                receipt_id = r.headers["x-nextmodel-receipt-id"]
            async with s.post(p.base + "/chat/completions", data=b'{"model": "nope", "messages": []}') as r:
                assert r.status >= 400
        log = await p.stop()
    lines = [orjson.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert len(lines) == len(log.splitlines()), log  # every line is one JSON object
    events = [line.get("event") for line in lines]
    assert events.count("start") == 1 and events[-1] == "stopped", events
    assert events.index("start") < events.index("request") < events.index("stopping"), events
    (request,) = [line for line in lines if line.get("receipt_id") == receipt_id]
    assert request["model"] == "fake-basic" and request["provider"] == "fake"
    assert request["status"] == 200 and request["served_mode"] == "fresh"
    assert request["cost_usd"] not in (None, "unknown") and request["latency_ms"] > 0
    for secret in ("sk-client-secret", "sk-upstream-secret", "hello body text"):
        assert secret not in log


async def test_shutdown_grace_ends_a_long_stream_with_an_error_event_and_says_so(
    write_config: Any, fake_upstream: Any
) -> None:
    fake_upstream.state.silent_s = 30.0
    body = orjson.dumps(
        {"model": "fake-silent", "stream": True, "messages": [{"role": "user", "content": "long one"}]}
    )
    async with serving(write_config, "shutdown_grace_s: 1") as p:
        async with aiohttp.ClientSession() as s:
            async with s.post(p.base + "/chat/completions", data=body) as r:
                assert r.status == 200
                receipt_id = r.headers["x-nextmodel-receipt-id"]
                first = await r.content.readline()
                assert first.startswith(b"data: {")
                p.proc.send_signal(signal.SIGTERM)
                rest = await asyncio.wait_for(r.content.read(), 20)  # the stream ends cleanly
        await p.stop()
    events = [e.strip() for e in rest.split(b"\n\n") if e.strip().startswith(b"data: ")]
    error = orjson.loads(events[-1][6:])["error"]
    assert error["code"] == "server_shutting_down" and "shutting down" in error["message"]
    conn = sqlite3.connect(p.db)
    try:
        row = conn.execute(
            "SELECT status, error_code, served_mode FROM receipts WHERE receipt_id = ?", (receipt_id,)
        ).fetchone()
    finally:
        conn.close()
    assert row == (503, "server_shutting_down", "error")
    assert p.proc.returncode == 0


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--port", "70000"], "70000"),
        (["--db", "/nonexistent-folder-xyz/ledger.db"], "does not exist"),
    ],
)
def test_serve_failures_are_one_line(write_config: Any, args: list[str], expected: str) -> None:
    import subprocess

    config = write_config()
    result = subprocess.run(
        [NMPROXY, "serve", "--config", str(config.source_path), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_file_that_is_not_sqlite(write_config: Any, tmp_path: Path) -> None:
    import subprocess

    config = write_config()
    bogus = tmp_path / "notes.txt"
    bogus.write_text("these are my notes, not a ledger\n" * 10)
    result = subprocess.run(
        [NMPROXY, "serve", "--config", str(config.source_path), "--db", str(bogus)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "not an SQLite file" in result.stderr and "--db" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


async def test_serve_port_in_use_is_one_line(write_config: Any) -> None:
    async with serving(write_config, "header_timeout_s: 5") as p:
        config = write_config()  # the same port (the file was rewritten by serving)
        proc = await asyncio.create_subprocess_exec(
            NMPROXY,
            "serve",
            "--config",
            str(config.source_path),
            "--port",
            str(p.port),
            "--db",
            str(Path(config.ledger.path).with_name("other.db")),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _out, err = await asyncio.wait_for(proc.communicate(), 30)
        await p.stop()
    text = err.decode()
    assert proc.returncode == 1
    assert "already in use" in text and "--port" in text
    assert "Traceback" not in text
