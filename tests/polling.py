"""Waiting on a condition instead of a fixed sleep: poll until it holds, fail clearly after a bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(
    condition: Callable[[], bool], what: str, *, timeout_s: float = 5.0, every_s: float = 0.01
) -> None:
    """Return as soon as `condition()` is true; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s}s"
        await asyncio.sleep(every_s)
