"""Helpers shared by the issue-10 ledger tests: read a receipt through the API, probe /healthz."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp


async def receipt_of(base: str, receipt_id: str, wait_s: float = 3.0) -> dict[str, Any]:
    """GET /v1/receipts/{id}; a stream's receipt may still be committing, so wait for it (bounded)."""
    deadline = time.monotonic() + wait_s
    async with aiohttp.ClientSession() as s:
        while True:
            async with s.get(f"{base}/receipts/{receipt_id}") as r:
                if r.status == 200:
                    return await r.json()
            assert time.monotonic() < deadline, f"no receipt {receipt_id}"
            await asyncio.sleep(0.02)


async def healthz(server: Any) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(str(server.make_url("/healthz"))) as r:
        return r.status, await r.json()
