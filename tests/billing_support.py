"""Support for the billing tests: a proxy whose models carry the SHIPPED catalog's price models (read from
providers.yaml) but send to the fake upstreams, started with a clock the test sets (the instant a request is
billed at), plus the openai SDK client and CLI helpers. Expected figures are computed in the tests themselves
from the providers' published rules, never by calling the pricing code."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import yaml
from aiohttp.test_utils import TestServer
from click.testing import CliRunner

from nextmodel_proxy.app import create_app
from nextmodel_proxy.cli.main import main as cli_main
from nextmodel_proxy.config import load_config

SHIPPED = Path(__file__).resolve().parents[1] / "providers.yaml"
PRICE_KEYS = (
    "currency",
    "price",
    "prices",
    "tiers",
    "windows",
    "service_tiers",
    "source",
    "as_of",
    "retires",
    "replacement",
)
MILLION = Decimal(1_000_000)

# (our id, shipped catalog id whose price model it carries, provider in the test config, upstream id)
MODELS = [
    ("argon", "gemini-4-argon", "fake", "fake-basic"),
    ("flash38", "gemini-3.8-flash", "fake", "fake-basic"),
    ("deepseek", "deepseek-flash", "fake", "fake-deepseek"),
    ("sol", "gpt-6.2-sol", "fake", "fake-basic"),
    ("luna", "gpt-6-luna", "fake", "fake-basic"),
    ("haiku55", "claude-haiku-5-5", "fake", "fake-basic"),
    ("pro31", "gemini-3.1-pro-preview", "fake", "fake-basic"),
    ("grok47", "grok-4.7", "fake", "fake-basic"),
    ("qwen37", "qwen3.7-plus", "fake", "fake-basic"),
    ("doubao", "doubao-seed-2-0-mini-260215", "fake", "fake-basic"),
    ("opus55", "claude-opus-5-5", "anthropic", "claude-opus-5-5-cachettl"),
    # retired ids (and their replacements) under their shipped names: the 410 must name the replacement
    ("claude-sonnet-4-5", "claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929", "anthropic", "claude-sonnet-4-5-20250929"),
    ("claude-sonnet-5-5", "claude-sonnet-5-5", "anthropic", "claude-sonnet-5-5"),
    ("gemini-2.5-flash", "gemini-2.5-flash", "fake", "fake-basic"),
    ("gemini-3.5-flash-lite", "gemini-3.5-flash-lite", "fake", "fake-basic"),
]


def shipped_models() -> dict[str, Any]:
    return yaml.safe_load(SHIPPED.read_text())["models"]


def config_text(fake_url: str, db: Path, fx_rates: list[dict[str, Any]], display: str = "USD") -> str:
    shipped = shipped_models()
    models = {}
    for ours, theirs, provider, upstream in MODELS:
        entry = {k: v for k, v in shipped[theirs].items() if k in PRICE_KEYS}
        models[ours] = {"provider": provider, "upstream_id": upstream, **entry}
    doc = {
        "server": {"host": "127.0.0.1", "port": 0},
        "ledger": {"path": str(db)},
        "currency": {"display": display},
        "fx": {"source": "test rates", "max_age_days": 3650, "rates": fx_rates},
        "providers": {
            "fake": {"kind": "openai", "base_url": f"{fake_url}/v1", "api_key_env": "NMPROXY_TEST_FAKE_KEY"},
            "anthropic": {"kind": "anthropic", "base_url": fake_url, "api_key_env": "NMPROXY_TEST_FAKE_KEY"},
        },
        "models": models,
    }
    return json.dumps(doc, default=str)  # JSON is YAML


class Clock:
    """The instant the next request starts at (set by the test)."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)

    def set(self, text: str) -> None:
        self.now = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))

    def __call__(self) -> dt.datetime:
        return self.now


class Billing:
    """A running proxy on the billing config, its clock, a client, and the config/ledger paths."""

    def __init__(self, tmp_path: Path, fake_url: str) -> None:
        self.tmp_path = tmp_path
        self.fake_url = fake_url
        self.config_path = tmp_path / "providers.yaml"
        self.db = tmp_path / "ledger.db"
        self.clock = Clock()
        self.server: TestServer | None = None
        self.client: openai.AsyncOpenAI | None = None

    async def start(self, fx_rates: list[dict[str, Any]], display: str = "USD") -> None:
        await self.stop()
        self.config_path.write_text(config_text(self.fake_url, self.db, fx_rates, display))
        self.server = TestServer(
            create_app(load_config(self.config_path), clock=self.clock), host="127.0.0.1"
        )
        await self.server.start_server()
        self.client = openai.AsyncOpenAI(
            base_url=str(self.server.make_url("/v1")), api_key="sk-client", max_retries=0, timeout=20
        )

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
        if self.server is not None:
            await self.server.close()
            self.server = None

    async def chat(
        self,
        model: str,
        at: str,
        usage: dict[str, Any] | None = None,
        tier: str | None = None,
        *,
        stream: bool = False,
        **kw: Any,
    ) -> dict[str, Any]:
        """One chat at instant `at`; the fake reports `usage` (and `tier`); returns the stored receipt."""
        assert self.client is not None and self.server is not None
        self.clock.set(at)
        metadata = {}
        if usage is not None:
            metadata["fake_usage"] = orjson.dumps(usage).decode()
        if tier is not None:
            metadata["fake_service_tier"] = tier
        if metadata:
            kw["metadata"] = metadata
        messages = [{"role": "user", "content": "price this"}]
        if stream:
            chunks = await self.client.chat.completions.create(
                model=model, messages=messages, stream=True, stream_options={"include_usage": True}, **kw
            )
            receipt_id = None
            async for _chunk in chunks:
                receipt_id = receipt_id or chunks.response.headers.get("x-nextmodel-receipt-id")
            assert receipt_id
            return await self.receipt(receipt_id, wait=True)
        raw = await self.client.chat.completions.with_raw_response.create(
            model=model, messages=messages, **kw
        )
        receipt = await self.receipt(raw.headers["x-nextmodel-receipt-id"])
        assert raw.headers["x-nextmodel-cost-usd"] == receipt["billed_cost_usd"]
        return receipt

    async def receipt(self, receipt_id: str, *, wait: bool = False) -> dict[str, Any]:
        """GET /v1/receipts/{id}; a stream's receipt is queued at its end, so `wait` polls (bounded)."""
        assert self.server is not None
        deadline = time.monotonic() + (3.0 if wait else 0.0)
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(self.server.make_url(f"/v1/receipts/{receipt_id}")) as resp:
                    if resp.status == 200:
                        return await resp.json()
                assert time.monotonic() < deadline, resp.status
                await asyncio.sleep(0.02)

    def cli(self, *args: str) -> Any:
        return CliRunner().invoke(cli_main, [*args, "--db", str(self.db), "--config", str(self.config_path)])


def cost(*parts: tuple[int, Any]) -> Decimal:
    """Sum of tokens x published price per 1M tokens, exact."""
    return sum((Decimal(n) * Decimal(str(p)) for n, p in parts), Decimal(0)) / MILLION


def money(amount: Decimal) -> Decimal:
    """As a receipt stores it: rounded half-even to 1e-12."""
    return amount.quantize(Decimal("1e-12"))
