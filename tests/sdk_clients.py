"""openai SDK clients for tests that make several per test; conftest closes them all after each test."""

from __future__ import annotations

from typing import Any

import openai

OPEN: list[openai.AsyncOpenAI] = []


def sdk(proxy: Any, key: str = "sk-open-mode", **headers: str) -> openai.AsyncOpenAI:
    """A client on the proxy with `key` and extra default headers (closed after the test)."""
    client = openai.AsyncOpenAI(
        base_url=proxy.base, api_key=key, max_retries=0, timeout=10, default_headers=headers or None
    )
    OPEN.append(client)
    return client


async def close_all() -> None:
    while OPEN:
        await OPEN.pop().close()
