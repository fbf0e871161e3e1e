"""The proxy and the fake upstream served from a background thread, for module-scoped fixtures.

Client libraries with their own event loops or sync APIs (openai sync, LangChain, litellm, the anthropic SDK,
a Node process) then drive one running proxy for a whole test module instead of one per test.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from aiohttp import web
from conftest import BASE_YAML, free_port
from fake_upstream import FakeState, create_fake_app

from nextmodel_proxy.app import create_app
from nextmodel_proxy.config import load_config

START_TIMEOUT_S = 15


class LiveProxy:
    """Starts on enter, stops on exit; `base` is the proxy's /v1 URL, `fake` the fake upstream's state."""

    def __init__(self, tmp: Path, extra_yaml: str = "") -> None:
        self.tmp = tmp
        self.extra_yaml = extra_yaml
        self.fake = FakeState()
        self.base = ""
        self.root = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="live-proxy", daemon=True)
        self._runners: list[web.AppRunner] = []

    def __enter__(self) -> LiveProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(START_TIMEOUT_S)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(START_TIMEOUT_S)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(START_TIMEOUT_S)
            self._loop.close()

    async def _serve(self, app: web.Application) -> int:
        runner = web.AppRunner(app, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runners.append(runner)
        return runner.addresses[0][1]

    async def _start(self) -> None:
        fake_port = await self._serve(create_fake_app(self.fake))
        path = self.tmp / "providers.yaml"
        path.write_text(
            BASE_YAML.format(
                fake_url=f"http://127.0.0.1:{fake_port}",
                db=self.tmp / "ledger.db",
                dead_port=free_port(),
                keepalive_s=15,
                timeout_s=5,
            )
            + self.extra_yaml
        )
        port = await self._serve(create_app(load_config(path)))
        self.root = f"http://127.0.0.1:{port}"
        self.base = self.root + "/v1"

    async def _stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()


def live_proxy_fixture(name: str, extra_yaml: str = "") -> Any:
    """A module-scoped fixture: one LiveProxy (fake upstream + proxy, its own ledger) for the whole module."""
    import pytest

    @pytest.fixture(scope="module")
    def live(tmp_path_factory: Any) -> Any:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("NMPROXY_TEST_FAKE_KEY", "sk-upstream-secret")
            with LiveProxy(tmp_path_factory.mktemp(name), extra_yaml) as proxy:
                yield proxy

    return live
