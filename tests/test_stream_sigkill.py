"""Issue 10 (E): a finished stream has its receipt. The proxy sends a stream's final events (`data: [DONE]`)
only once its receipt has committed, so SIGKILL at any moment never leaves a client holding a finished stream
(or a non-stream answer) that the ledger does not know. Bounded rounds (NMPROXY_SIGKILL_ROUNDS, default 3)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import free_port
from test_lifecycle import _spawn, _wait

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
ROUNDS = int(os.environ.get("NMPROXY_SIGKILL_ROUNDS", "3"))


async def _worker(port: int, n: int, until: float, done: dict[str, list[str]]) -> None:
    """Streams and non-streams until `until`; notes the receipt of every answer the client got whole."""
    async with aiohttp.ClientSession() as s:
        i = 0
        while time.monotonic() < until:
            i += 1
            stream = i % 3 != 0
            body = {
                "model": "gpt-test",
                "stream": stream,
                "messages": [{"role": "user", "content": f"worker {n} request {i} a few words more"}],
            }
            try:
                async with s.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body) as r:
                    rid = r.headers.get("x-nextmodel-receipt-id", "")
                    if r.status == 200 and stream:
                        # noted the moment [DONE] arrives, not at the end of the response
                        async for line in r.content:
                            if line == b"data: [DONE]\n":
                                done["stream"].append(rid)
                    else:
                        await r.read()
                        if r.status == 200:
                            done["json"].append(rid)
            except (TimeoutError, aiohttp.ClientError):
                return  # killed


async def test_sigkill_never_loses_the_receipt_of_a_finished_answer(
    write_config: Any, tmp_path: Path
) -> None:
    config = write_config()
    db = tmp_path / "ledger.db"
    done: dict[str, list[str]] = {"stream": [], "json": []}
    for round_ in range(ROUNDS):
        port = free_port()
        proc = await _spawn(Path(config.source_path), port)
        until = time.monotonic() + 30
        workers = [asyncio.create_task(_worker(port, n, until, done)) for n in range(8)]
        target = len(done["stream"]) + 150 + 50 * round_
        deadline = time.monotonic() + 20
        while len(done["stream"]) < target and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # mid-traffic: streams are finishing all the time
        _wait(proc)
        await asyncio.gather(*workers)
    with sqlite3.connect(db) as conn:
        ids = {row[0] for row in conn.execute("SELECT receipt_id FROM receipts")}
    lost_streams = set(done["stream"]) - ids
    lost_json = set(done["json"]) - ids
    print(
        f"\nSIGKILL x{ROUNDS}: finished streams {len(done['stream'])}, lost {len(lost_streams)}; "
        f"non-stream {len(done['json'])}, lost {len(lost_json)}"
    )
    assert len(done["stream"]) >= 150 * ROUNDS
    assert not lost_streams and not lost_json
