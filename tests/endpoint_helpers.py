"""Shared by the Responses / Messages / completions tests: extra models, receipts, the spend CLI."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from click.testing import CliRunner

from nextmodel_proxy.cli.main import main as cli_main
from nextmodel_proxy.config import Config, load_config

NATIVE = "{provider: fake, endpoints: [chat, responses, completions], price: {input: 2, output: 8, cached_input: 0.5}}"
EXTRA_MODELS = f"""  resp-native: {{provider: fake, upstream_id: resp-cached-reason, endpoints: [chat, responses], price: {{input: 2, output: 8, cached_input: 0.5}}}}
  resp-tools: {NATIVE}
  resp-incomplete: {NATIVE}
  resp-failed: {NATIVE}
  resp-midstream-error: {NATIVE}
  resp-error-400: {NATIVE}
  acme/fim-model: {{provider: fake, upstream_id: fim-model, price: {{input: 1, output: 2}}}}
  fim-model: {{provider: fake, price: {{input: 1, output: 2}}}}
  claude-ttl: {{provider: anthropic, upstream_id: claude-opus-cachettl, price: {{input: 5, output: 25, cached_input: 0.5, cache_write: 6.25, cache_write_1h: 10}}}}
  claude-native: {{provider: anthropic, upstream_id: claude-sonnet-4-5, price: {{input: 3, output: 15, cached_input: 0.30, cache_write: 3.75}}}}
"""


def with_endpoint_models(config: Config) -> Config:
    path = Path(config.source_path)
    path.write_text(path.read_text().replace("\nmodels:\n", "\nmodels:\n" + EXTRA_MODELS, 1))
    return load_config(path)


def usd(tokens_and_rates: list[tuple[int, str]]) -> Decimal:
    """Exact USD of (tokens, USD per 1M tokens) pairs, the providers' published rule."""
    return sum((Decimal(t) * Decimal(r) for t, r in tokens_and_rates), Decimal(0)) / Decimal(1_000_000)


async def receipt(proxy: Any, receipt_id: str) -> dict[str, Any]:
    """GET /v1/receipts/{id}, waiting (bounded) for a stream's receipt, which is queued at its end."""
    deadline = time.monotonic() + 3.0
    async with aiohttp.ClientSession() as s:
        while True:
            async with s.get(f"{proxy.base}/receipts/{receipt_id}") as r:
                if r.status == 200:
                    return await r.json()
            assert time.monotonic() < deadline, receipt_id
            await asyncio.sleep(0.02)


def spend_total(tmp_path: Path) -> dict[str, Any]:
    result = CliRunner().invoke(
        cli_main,
        [
            "spend",
            "--json",
            "--db",
            str(tmp_path / "ledger.db"),
            "--config",
            str(tmp_path / "providers.yaml"),
        ],
    )
    assert result.exit_code == 0, result.output
    return orjson.loads(result.output)["total"]


def sse_events(raw: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    """(event name, JSON data) of every event in a raw SSE body (comments skipped)."""
    out = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = None, []
        for line in block.decode().split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data and data != ["[DONE]"]:
            out.append((name, orjson.loads("\n".join(data))))
    return out
