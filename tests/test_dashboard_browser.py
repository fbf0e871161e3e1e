"""The dashboard in a real headless Chromium (Debian's), driven by Playwright, against `nmproxy serve`.

Skipped with a message where /usr/bin/chromium or Playwright is missing; CI installs both (.ci/apt-packages.txt,
the test extras). Every request the page makes is checked: anything not to 127.0.0.1 is aborted and fails.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from dashboard_seed import receipt, seed, utc

from nextmodel_proxy.access.keys import KeySettings, create_key
from nextmodel_proxy.cli.main import main as nmproxy
from nextmodel_proxy.ledger import schema as db

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
SCREENSHOT_DIR = Path(os.environ.get("NMPROXY_ARTIFACTS", "build/artifacts"))
README_SHOT = Path(__file__).parent.parent / "docs" / "img" / "dashboard-overview.png"

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
)

CONFIG = """
server: {{host: 127.0.0.1, port: {port}}}
ledger: {{path: {db}}}
providers:
  demo: {{kind: demo}}
models:
  demo-chat: {{provider: demo, price: {{input: 0.10, output: 0.40}}}}
  demo-mini: {{provider: demo, price: {{input: 0.05, output: 0.20}}}}
  demo-embed: {{provider: demo, mode: embedding, price: {{input: 0.02, output: 0}}}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    """`nmproxy serve` in a subprocess on a loopback port, stopped with SIGTERM."""

    def __init__(self, tmp: Path) -> None:
        self.port = _free_port()
        self.db = tmp / "ledger.db"
        self.config = tmp / "providers.yaml"
        self.config.write_text(CONFIG.format(port=self.port, db=self.db))
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "NMPROXY_ADMIN_KEY"}
        self.log = self.config.with_name("serve.log")
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nextmodel_proxy", "serve", "--config", str(self.config)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(
            f"the proxy did not become healthy: {self.proc.stderr.read(2000) if self.proc.stderr else ''}"
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=15)

    def spend(self, *args: str) -> dict[str, Any]:
        result = CliRunner().invoke(
            nmproxy, ["spend", "--json", *args, "--config", str(self.config), "--db", str(self.db)]
        )
        assert result.exit_code == 0, result.output
        return orjson.loads(result.output)


def seeded_receipts(today: dt.date) -> list[Any]:
    """Ten days of traffic over two models, three projects, two keys, replays and errors."""
    out = []
    for days_ago in range(10):
        day = dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(9), dt.UTC)
        for i in range(6):
            fresh = receipt(
                day + dt.timedelta(minutes=37 * i),
                model="demo-chat" if i % 3 else "demo-mini",
                project=("web", "batch", "eval")[i % 3],
                key_id=("key-a", "key-b")[i % 2],
                prompt_tokens=1000 + 97 * i + days_ago,
                completion_tokens=300 + 13 * i,
            )
            out.append(fresh)
        out.append(
            receipt(
                day + dt.timedelta(hours=5),
                served_mode="exact-cache",
                reused_receipt_id=out[-1].receipt_id,
                project="web",
                key_id="key-a",
                usage_source="cache",
            )
        )
        out.append(
            receipt(
                day + dt.timedelta(hours=6),
                status=429,
                error_code="rate_limited",
                served_mode="error",
                cost=Decimal(0),
            )
        )
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proxy, list[Any]]]:
    proxy = Proxy(tmp_path_factory.mktemp("seeded"))
    rows = seeded_receipts(dt.datetime.now(dt.UTC).date())
    rows.append(
        receipt(utc("2026-11-10T23:30:00Z"), project="night", prompt_tokens=4242, completion_tokens=42)
    )
    db.open_db(proxy.db).close()
    seed(proxy.db, rows)
    proxy.start()
    yield proxy, rows
    proxy.stop()


class Page:
    """A page that records console errors and fails any request leaving 127.0.0.1."""

    def __init__(self, browser: Any, tmp: Path, **context: Any) -> None:
        self.context = browser.new_context(**context)
        self.context.set_default_timeout(30_000)  # generous: CI machines can be loaded
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

        def guard(route: Any) -> None:
            url = route.request.url
            if url.startswith(("http://127.0.0.1:", "data:")):
                route.continue_()
            else:
                self.outside.append(url)
                route.abort()

        self.page.route("**/*", guard)

    def close(self) -> None:
        assert self.errors == [], self.errors
        assert self.outside == [], self.outside
        self.context.close()


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Iterator[Page]:
    p = Page(browser, tmp_path, viewport={"width": 1280, "height": 1000})
    yield p
    p.close()


def tile(page: Any, name: str) -> str:
    return page.get_attribute(f'[data-tile="{name}"]', "data-exact")


def test_overview_tiles_equal_spend_json_and_the_charts_draw(
    seeded: tuple[Proxy, list[Any]], page: Page
) -> None:
    proxy, _ = seeded
    today = dt.datetime.now(dt.UTC).date()
    first = today - dt.timedelta(days=6)
    response = page.page.goto(f"{proxy.url}/ui?tz=UTC&from={first}&to={today}")
    assert response is not None and response.status == 200
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    page.page.wait_for_selector("#spend-chart canvas")
    page.page.wait_for_selector("#mode-chart canvas")
    since, until = f"{first}T00:00:00Z", f"{today + dt.timedelta(days=1)}T00:00:00Z"
    total = proxy.spend("--since", since, "--until", until)["total"]
    assert tile(page.page, "requests") == str(total["count"])
    assert page.page.text_content("[data-exact-billed]") == total["billed_cost_usd"]
    assert tile(page.page, "savings") == total["savings_usd"]
    today_total = proxy.spend("--since", f"{today}T00:00:00Z")["total"]
    assert tile(page.page, "today") == today_total["billed_cost_usd"]
    month_total = proxy.spend("--since", f"{today.replace(day=1)}T00:00:00Z")["total"]
    assert tile(page.page, "month") == month_total["billed_cost_usd"]
    by_mode = {
        r["group"]: r["count"]
        for r in proxy.spend("--by", "mode", "--since", since, "--until", until)["rows"]
    }
    assert tile(page.page, "exact_cache") == str(by_mode["exact-cache"])
    assert tile(page.page, "fresh") == str(by_mode["fresh"])
    # Sorting a breakdown by spend puts the largest first.
    page.page.click('table[data-breakdown="project"] th:nth-child(2)')
    page.page.click('table[data-breakdown="project"] th:nth-child(2)')
    spends = page.page.eval_on_selector_all(
        'table[data-breakdown="project"] tbody tr td:nth-child(2)',
        "cells => cells.map(c => Number(c.dataset.value))",
    )
    assert spends == sorted(spends, reverse=True) and len(spends) == 4  # web, batch, eval, (none)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.page.screenshot(path=str(SCREENSHOT_DIR / "dashboard-overview.png"), full_page=True)
    if os.environ.get("NMPROXY_UPDATE_README_SHOT"):
        README_SHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SCREENSHOT_DIR / "dashboard-overview.png", README_SHOT)


def test_a_receipt_at_2330_utc_is_on_the_next_day_in_kolkata(
    seeded: tuple[Proxy, list[Any]], page: Page
) -> None:
    proxy, _ = seeded
    page.page.goto(f"{proxy.url}/ui?tz=Asia/Kolkata&from=2026-11-11&to=2026-11-11")
    assert tile(page.page, "requests") == "1"
    assert page.page.text_content('table[data-breakdown="project"] tbody').strip().startswith("night")
    page.page.goto(f"{proxy.url}/ui?tz=UTC&from=2026-11-11&to=2026-11-11")
    assert tile(page.page, "requests") == "0"


def test_receipts_filter_page_and_replay_link(seeded: tuple[Proxy, list[Any]], page: Page) -> None:
    proxy, rows = seeded
    today = dt.datetime.now(dt.UTC).date()
    p = page.page
    p.goto(f"{proxy.url}/ui/receipts?tz=UTC&from={today - dt.timedelta(days=9)}&to={today}&limit=5")
    p.fill("input[name=model]", "demo-mini")
    p.click("form.filters button[type=submit]")
    p.wait_for_load_state()
    models = p.eval_on_selector_all(
        "table.receipts tbody tr td:nth-child(3)", "c => c.map(x => x.textContent)"
    )
    assert models and set(models) == {"demo-mini"}
    first_page = p.eval_on_selector_all(
        "table.receipts tbody tr td:first-child", "c => c.map(x => x.textContent)"
    )
    p.click("a[rel=next]")
    p.wait_for_load_state()
    second_page = p.eval_on_selector_all(
        "table.receipts tbody tr td:first-child", "c => c.map(x => x.textContent)"
    )
    assert second_page and not set(first_page) & set(second_page)
    replay = next(r for r in rows if r.served_mode == "exact-cache")
    p.goto(f"{proxy.url}/ui/receipts/{replay.receipt_id}")
    p.click("#fresh-link")
    p.wait_for_load_state()
    assert p.text_content("h1.receipt-id") == replay.reused_receipt_id


def test_a_phone_width_needs_no_sideways_scroll(
    seeded: tuple[Proxy, list[Any]], browser: Any, tmp_path: Path
) -> None:
    proxy, _ = seeded
    phone = Page(browser, tmp_path, viewport={"width": 390, "height": 844})
    try:
        phone.page.goto(f"{proxy.url}/ui")
        phone.page.wait_for_selector("#spend-chart canvas")
        assert phone.page.evaluate("document.documentElement.scrollWidth") <= 391
    finally:
        phone.close()


def test_login_wrong_key_and_a_project_key_seeing_only_itself(browser: Any, tmp_path: Path) -> None:
    proxy = Proxy(tmp_path)
    conn = db.open_db(proxy.db)
    admin, _ = create_key(conn, KeySettings(name="ops", is_admin=True))
    mine, mine_rec = create_key(conn, KeySettings(name="app", project="web"))
    conn.close()
    day = dt.datetime.combine(dt.datetime.now(dt.UTC).date(), dt.time(0, 5), dt.UTC)
    seed(proxy.db, [receipt(day, key_id=mine_rec.key_id), receipt(day, key_id="someone-else"), receipt(day)])
    proxy.start()
    view = Page(browser, tmp_path, viewport={"width": 1280, "height": 900})
    try:
        p = view.page
        p.goto(f"{proxy.url}/ui")
        assert "/ui/login" in p.url
        p.fill("input[name=key]", "nm-not-a-real-key")
        p.click("form button[type=submit]")
        assert p.is_visible(".problem")
        view.errors.clear()  # the browser logs the 401 of the failed sign-in as a console error
        p.fill("input[name=key]", mine.plaintext)
        p.click("form button[type=submit]")
        p.wait_for_selector('[data-tile="requests"]')
        assert tile(p, "requests") == "1"
        assert mine.plaintext not in p.content()
        p.click("header form button")  # sign out
        p.wait_for_selector("input[name=key]")
        p.fill("input[name=key]", admin.plaintext)
        p.click("form button[type=submit]")
        p.wait_for_selector('[data-tile="requests"]')
        assert tile(p, "requests") == "3"
        assert admin.plaintext not in p.content()
    finally:
        view.close()
        proxy.stop()


def test_an_empty_ledger_shows_what_to_do(browser: Any, tmp_path: Path) -> None:
    proxy = Proxy(tmp_path)
    proxy.start()
    view = Page(browser, tmp_path)
    try:
        view.page.goto(f"{proxy.url}/ui")
        assert "No receipts yet" in view.page.text_content(".empty")
    finally:
        view.close()
        proxy.stop()
