"""Shared fixtures: a real fake upstream on a loopback port, a proxy app on another, the openai SDK as client."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestServer
from fake_upstream import FakeState, create_fake_app
from sdk_clients import close_all

from nextmodel_proxy.app import create_app
from nextmodel_proxy.config import Config, load_config

BASE_YAML = """
server: {{host: 127.0.0.1, port: 0, keepalive_s: {keepalive_s}}}
ledger: {{path: {db}}}
providers:
  fake:
    kind: openai
    base_url: {fake_url}/v1
    api_key_env: NMPROXY_TEST_FAKE_KEY
    timeout_s: {timeout_s}
    connect_timeout_s: 2
    max_retries: 0
  retrying:
    kind: openai
    base_url: {fake_url}/v1
    api_key_env: NMPROXY_TEST_FAKE_KEY
    max_retries: 2
  unkeyed:
    kind: openai
    base_url: {fake_url}/v1
    api_key_env: NMPROXY_TEST_UNSET_KEY
  dead:
    kind: openai
    base_url: http://127.0.0.1:{dead_port}/v1
    api_key_env: NMPROXY_TEST_FAKE_KEY
    connect_timeout_s: 1
    max_retries: 0
  demo: {{kind: demo}}
  anthropic:
    kind: anthropic
    base_url: {fake_url}
    api_key_env: NMPROXY_TEST_FAKE_KEY
    max_retries: 0
  gemini:
    kind: gemini
    base_url: {fake_url}
    api_key_env: NMPROXY_TEST_FAKE_KEY
    max_retries: 0
models:
  gpt-test: {{provider: fake, upstream_id: fake-basic, price: {{input: 0.15, output: 0.60, cached_input: 0.075}}}}
  fake-basic: {{provider: fake, price: {{input: 0.15, output: 0.60, cached_input: 0.075}}}}
  fake-tools: {{provider: fake, price: {{input: 1, output: 2}}}}
  fake-text-tool: {{provider: fake, price: {{input: 1, output: 2}}}}
  fake-json: {{provider: fake, price: {{input: 1, output: 2}}}}
  fake-error-429: {{provider: fake, price: {{input: 1, output: 2}}}}
  fake-error-500: {{provider: fake, price: {{input: 1, output: 2}}}}
  fake-error-400: {{provider: fake, price: {{input: 1, output: 2}}}}
  fake-slow: {{provider: fake, price: {{input: 1, output: 2}}}}
  fake-silent: {{provider: fake, price: {{input: 1, output: 2}}}}
  fake-broken: {{provider: fake, price: {{input: 1, output: 2}}}}
  fake-hang: {{provider: fake, price: {{input: 1, output: 2}}}}
  fake-nousage: {{provider: fake, price: {{input: 1, output: 2}}}}
  fake-filter: {{provider: fake, price: {{input: 1, output: 2}}}}
  fake-deepseek: {{provider: fake, price: {{input: 0.28, output: 0.42, cached_input: 0.028}}}}
  fake-noprice: {{provider: fake}}
  fake-embed: {{provider: fake, mode: embedding, price: {{input: 0.02, output: 0}}}}
  needs-key: {{provider: unkeyed, upstream_id: fake-basic, price: {{input: 1, output: 1}}}}
  dead-model: {{provider: dead, price: {{input: 1, output: 1}}}}
  flaky-500: {{provider: retrying, price: {{input: 1, output: 1}}}}
  flaky-429: {{provider: retrying, price: {{input: 1, output: 1}}}}
  always-500: {{provider: retrying, upstream_id: fake-error-500, price: {{input: 1, output: 1}}}}
  backup: {{provider: fake, upstream_id: fake-basic, price: {{input: 1, output: 1}}}}
  retry-broken: {{provider: retrying, upstream_id: fake-broken, price: {{input: 1, output: 1}}}}
  demo-chat: {{provider: demo, price: {{input: 0.10, output: 0.40, cached_input: 0.05}}}}
  demo-embed: {{provider: demo, mode: embedding, price: {{input: 0.02, output: 0}}}}
  claude-sonnet-4-5:
    provider: anthropic
    price: &claude_price {{input: 3, output: 15, cached_input: 0.30, cache_write: 3.75}}
  claude-sonnet-4-5-same: {{provider: anthropic, price: *claude_price}}
  claude-sonnet-4-5-same-tools: {{provider: anthropic, price: *claude_price}}
  claude-sonnet-4-5-tools: {{provider: anthropic, price: *claude_price}}
  claude-sonnet-4-5-error: {{provider: anthropic, price: *claude_price}}
  claude-sonnet-4-5-overloaded: {{provider: anthropic, price: *claude_price}}
  claude-sonnet-4-5-midstream-error: {{provider: anthropic, price: *claude_price}}
  claude-sonnet-4-5-echo: {{provider: anthropic, price: *claude_price}}
  claude-sonnet-4-5-truncated: {{provider: anthropic, price: *claude_price}}
  gemini-2.5-flash:
    provider: gemini
    price: &gemini_price {{input: 0.30, output: 2.50, cached_input: 0.075, cache_write: 0.30}}
  gemini-2.5-flash-same: {{provider: gemini, price: *gemini_price}}
  gemini-2.5-flash-same-tools: {{provider: gemini, price: *gemini_price}}
  gemini-2.5-flash-tools: {{provider: gemini, price: *gemini_price}}
  gemini-2.5-flash-malformed: {{provider: gemini, price: *gemini_price}}
  gemini-2.5-flash-error: {{provider: gemini, price: *gemini_price}}
  gemini-2.5-flash-midstream-error: {{provider: gemini, price: *gemini_price}}
  gemini-2.5-flash-echo: {{provider: gemini, price: *gemini_price}}
  gemini-2.5-flash-truncated: {{provider: gemini, price: *gemini_price}}
  r-in-cheap: {{provider: fake, tags: [global], price: {{input: 0.1, output: 10}}}}
  r-out-cheap: {{provider: fake, tags: [domestic], price: {{input: 5, output: 1}}}}
  r-toolful: {{provider: fake, capabilities: [tools], price: {{input: 2, output: 2}}}}
  r-quick: {{provider: fake, latency: {{ttft_ms: 900}}, price: {{input: 1, output: 1}}}}
  r-sluggish: {{provider: fake, latency: {{ttft_ms: 100}}, price: {{input: 1, output: 1}}}}
  r-old: {{provider: fake, retires: 2024-01-01, replacement: r-in-cheap, price: {{input: 1, output: 1}}}}
  always-429: {{provider: retrying, upstream_id: fake-error-429, price: {{input: 1, output: 1}}}}
routes:
  resilient: {{strategy: fallback, candidates: [dead-model, always-500, backup]}}
  keyless-first: {{strategy: fallback, candidates: [needs-key, backup]}}
  r-fallback: {{strategy: fallback, candidates: [r-out-cheap, r-in-cheap]}}
  r-retiring: {{strategy: fallback, candidates: [r-old, r-in-cheap]}}
  r-cheapest: {{strategy: cheapest, candidates: [r-in-cheap, r-out-cheap]}}
  r-fastest: {{strategy: fastest, candidates: [r-quick, r-sluggish]}}
  r-weighted: {{strategy: weighted, candidates: [{{model: r-in-cheap, weight: 3}}, {{model: r-out-cheap, weight: 1}}]}}
  r-tools: {{strategy: fallback, candidates: [r-in-cheap, r-toolful]}}
  r-domestic: {{strategy: fallback, candidates: [r-in-cheap, r-out-cheap], tags: [domestic]}}
  r-capped: {{strategy: fallback, candidates: [r-in-cheap, r-out-cheap], max_price: {{output: 5}}}}
  r-500-first: {{strategy: fallback, candidates: [fake-error-500, r-in-cheap]}}
  r-429-first: {{strategy: fallback, candidates: [always-429, r-in-cheap]}}
  r-hang-first: {{strategy: fallback, candidates: [fake-hang, r-in-cheap]}}
  r-broken-first: {{strategy: fallback, candidates: [retry-broken, r-in-cheap]}}
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def fake_upstream() -> Any:
    state = FakeState()
    server = TestServer(create_fake_app(state), host="127.0.0.1")
    await server.start_server()
    server.state = state  # type: ignore[attr-defined]
    server.url = str(server.make_url("")).rstrip("/")  # type: ignore[attr-defined]
    yield server
    await server.close()


@pytest.fixture
def write_config(
    tmp_path: Path, fake_upstream: Any, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Config]:
    monkeypatch.setenv("NMPROXY_TEST_FAKE_KEY", "sk-upstream-secret")
    monkeypatch.delenv("NMPROXY_TEST_UNSET_KEY", raising=False)

    def write(extra: str = "", *, keepalive_s: float = 15, timeout_s: float = 5) -> Config:
        path = tmp_path / "providers.yaml"
        path.write_text(
            BASE_YAML.format(
                fake_url=fake_upstream.url,
                db=tmp_path / "ledger.db",
                dead_port=free_port(),
                keepalive_s=keepalive_s,
                timeout_s=timeout_s,
            )
            + extra
        )
        return load_config(path)

    return write


@pytest.fixture
async def start_proxy() -> Any:
    servers: list[TestServer] = []

    async def start(config: Config) -> TestServer:
        server = TestServer(create_app(config), host="127.0.0.1", handler_cancellation=True)
        await server.start_server()
        server.base = str(server.make_url("/v1"))  # type: ignore[attr-defined]
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def proxy(write_config: Callable[..., Config], start_proxy: Any) -> Any:
    return await start_proxy(write_config())


@pytest.fixture
async def client(proxy: Any) -> Any:
    async with openai.AsyncOpenAI(
        base_url=proxy.base, api_key="sk-client-not-forwarded", max_retries=0, timeout=20
    ) as c:
        yield c


@pytest.fixture
async def close_sdk_clients() -> Any:
    """Clients made with sdk_clients.sdk() are closed after the test (no sockets left for the GC); modules
    that use sdk() name this in their pytestmark."""
    yield
    await close_all()
