"""Embeddings for the semantic strategy, requested through the proxy itself (POST /v1/embeddings).

Any failure (no such model, a provider error, a malformed answer, no connection) becomes a reason string:
the semantic strategy is then reported as skipped and every other strategy still runs.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from nextmodel_proxy.cachesafety.live import in_process_proxy
from nextmodel_proxy.config import Config, LedgerConfig

BATCH = 128
TIMEOUT_S = 120.0


def _error_text(data: bytes) -> str:
    with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
        return str(orjson.loads(data)["error"]["message"])[:200]
    return data[:200].decode(errors="replace")


async def fetch(
    base: str, model: str, texts: Sequence[str], api_key: str | None = None
) -> tuple[dict[str, list[float]] | None, str | None]:
    """({text: vector}, None) or (None, why not)."""
    unique = sorted(set(texts))
    out: dict[str, list[float]] = {}
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session:
            for start in range(0, len(unique), BATCH):
                batch = unique[start : start + BATCH]
                body = {"model": model, "input": [t or " " for t in batch]}
                async with session.post(f"{base.rstrip('/')}/embeddings", json=body, headers=headers) as resp:
                    data = await resp.read()
                    if resp.status != 200:
                        return None, f"embeddings model {model!r} answered {resp.status}: {_error_text(data)}"
                vectors = _vectors(data, len(batch))
                if vectors is None:
                    return None, f"embeddings model {model!r} sent an answer that is not a list of vectors"
                out.update(zip(batch, vectors, strict=True))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return None, f"embeddings request failed: {type(exc).__name__}: {exc}"
    return out, None


def _vectors(data: bytes, count: int) -> list[list[float]] | None:
    try:
        items: Any = orjson.loads(data)["data"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(items, list) or len(items) != count:
        return None
    ordered = sorted(items, key=lambda d: d.get("index", 0) if isinstance(d, dict) else 0)
    vectors = [d.get("embedding") if isinstance(d, dict) else None for d in ordered]
    if not all(isinstance(v, list) and v and all(isinstance(x, int | float) for x in v) for v in vectors):
        return None
    return vectors  # type: ignore[return-value]


async def fetch_in_process(
    config: Config, model: str, texts: Sequence[str]
) -> tuple[dict[str, list[float]] | None, str | None]:
    """Embeddings through a proxy started from the user's config, writing to a temporary ledger."""
    if model not in config.models:
        return None, f"--embed-model {model!r} is not a model in the config"
    with tempfile.TemporaryDirectory(prefix="nmproxy-cachesafety-embed-") as tmp:
        own = replace(
            config,
            ledger=LedgerConfig(path=str(Path(tmp) / "ledger.db")),
            cache=replace(config.cache, path=None),
        )
        async with in_process_proxy(own) as base:
            return await fetch(base, model, texts)
