"""The proxy as a process: SIGTERM drains and flushes, SIGKILL leaves a verifiable ledger, a locked ledger fails closed."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import openai
import pytest
from click.testing import CliRunner
from conftest import free_port
from polling import until

from nextmodel_proxy.cli.main import main

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


async def _spawn(config_path: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nextmodel_proxy",
            "serve",
            "--config",
            str(config_path),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    deadline = time.monotonic() + 15
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return proc
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    proc.kill()
    _, err = proc.communicate(timeout=15)
    raise AssertionError(f"proxy did not start: {err.decode() if err else ''}")


def _wait(proc: subprocess.Popen, timeout: float = 15) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
        raise
    finally:
        if proc.stderr is not None:
            proc.stderr.close()


def _receipt_ids(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT receipt_id FROM receipts")}


async def test_sigterm_drains_open_streams_and_flushes_every_receipt(write_config, tmp_path, fake_upstream):
    config = write_config()
    port = free_port()
    proc = await _spawn(Path(config.source_path), port)
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)

    async def one_stream(i: int) -> tuple[str, str]:
        resp = await client.chat.completions.with_raw_response.create(
            model="fake-slow", stream=True, messages=[{"role": "user", "content": f"slow stream {i}"}]
        )
        text = "".join([c.choices[0].delta.content or "" async for c in resp.parse() if c.choices])
        return resp.headers["x-nextmodel-receipt-id"], text

    tasks = [asyncio.create_task(one_stream(i)) for i in range(5)]
    await until(lambda: fake_upstream.state.calls >= 5, "all five streams reached the upstream")
    proc.send_signal(signal.SIGTERM)
    results = await asyncio.gather(*tasks)
    await client.close()
    assert _wait(proc) == 0
    assert [text for _, text in results] == [f"Echo: slow stream {i}" for i in range(5)]
    assert {rid for rid, _ in results} <= _receipt_ids(tmp_path / "ledger.db")
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        rows = conn.execute("SELECT status, error_code, completion_tokens FROM receipts").fetchall()
    assert rows and all(status == 200 and err is None and out > 0 for status, err, out in rows)


async def test_sigkill_under_load_leaves_an_intact_ledger_with_every_acknowledged_receipt(
    write_config, tmp_path
):
    config = write_config()
    port = free_port()
    proc = await _spawn(Path(config.source_path), port)
    seen: list[str] = []
    stop = time.monotonic() + 1.0

    async def worker(n: int) -> None:
        async with aiohttp.ClientSession() as s:
            i = 0
            while time.monotonic() < stop + 5:
                i += 1
                try:
                    async with s.post(
                        f"http://127.0.0.1:{port}/v1/chat/completions",
                        json={
                            "model": "demo-chat",
                            "temperature": 0.5,
                            "messages": [{"role": "user", "content": f"w{n} r{i}"}],
                        },
                    ) as r:
                        await r.read()
                        if r.status == 200:
                            seen.append(r.headers["x-nextmodel-receipt-id"])
                except aiohttp.ClientError:
                    return

    workers = [asyncio.create_task(worker(n)) for n in range(8)]
    await until(lambda: len(seen) > 20, "answers under load", timeout_s=15)
    proc.kill()
    await asyncio.gather(*workers)
    _wait(proc)
    db = tmp_path / "ledger.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(seen) > 10
    # a non-stream answer is sent only after its receipt committed, so every id a client saw exists
    assert set(seen) <= _receipt_ids(db)
    result = CliRunner().invoke(main, ["receipts", "verify", "--db", str(db)])
    assert result.exit_code == 0, result.output


async def test_locked_ledger_answers_503_then_recovers_by_itself(
    write_config, start_proxy, tmp_path, fake_upstream
):
    config = write_config("")
    from dataclasses import replace

    config = replace(config, ledger=replace(config.ledger, busy_timeout_s=0.05))
    proxy = await start_proxy(config)
    client = openai.AsyncOpenAI(base_url=proxy.base, api_key="x", max_retries=0)
    await client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "before"}])
    blocker = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "locked"}]
            )
        assert info.value.status_code == 503
        assert info.value.body["code"] == "ledger_unavailable"
        calls = fake_upstream.state.calls
        with pytest.raises(openai.InternalServerError):  # refused up front while unhealthy
            await client.chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "again"}]
            )
        assert fake_upstream.state.calls == calls  # nothing is served that could not be recorded
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    deadline = time.monotonic() + 5
    while True:
        try:
            ok = await client.chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "after"}]
            )
            break
        except openai.InternalServerError:
            assert time.monotonic() < deadline, "the proxy did not recover"
            await asyncio.sleep(0.1)
    await client.close()
    assert ok.choices[0].message.content == "Echo: after"
    # the receipt of the call whose commit failed was kept and written once the lock went away
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM receipts WHERE status = 200").fetchone()[0] >= 3
