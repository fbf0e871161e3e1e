"""`--live`: every pair through the real proxy and its real cache, counted from the response headers.

Per pair (its own project, so pairs never share entries; the proxy runs with `cache.scope: project`):
send `a`; once its answer is stored (polled with `x-nextmodel-cache: only`, which also checks that the replay
is byte for byte the answer first served), send `a` again under another project with `only` (a 200 there is a
hit across scopes), then send `b` with default cache behaviour: `x-nextmodel-served-mode: exact-cache` on `b`
is a replay, a bad one when the pair is labelled `same_answer: false`. A sample of pairs repeats this as
streams to check the stream replay bytes. In-process only, a loopback upstream that fails (faulty.py) checks
that a 500 and a cut stream are never stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from nextmodel_proxy.access.keys import KeySettings, create_key
from nextmodel_proxy.app import create_app
from nextmodel_proxy.cachesafety import faulty
from nextmodel_proxy.cachesafety.dataset import Pair
from nextmodel_proxy.config import CacheConfig, Config, LedgerConfig, ModelConfig, Price, ProviderConfig
from nextmodel_proxy.ledger import schema as db

CONCURRENCY = 16
STORE_WAIT_S = 5.0  # how long a fresh answer may take to reach the cache file
STREAM_SAMPLE = 100
KEY_SCOPE_SAMPLE = 50
FAILURE_REPEATS = 3
REQUEST_TIMEOUT_S = 30.0
DEMO_PRICE = Price(Decimal("0.10"), Decimal("0.40"))
MAX_IDS = 20


@dataclass
class LiveTally:
    pairs: int = 0
    a_stored: int = 0
    a_not_cacheable: int = 0
    b_replayed: int = 0
    safe_replays: int = 0
    bad_replays: int = 0
    bad_replay_ids: list[str] = field(default_factory=list)
    replay_checked_nonstream: int = 0
    replay_mismatch_nonstream: int = 0
    stream_checked: int = 0
    replay_mismatch_stream: int = 0
    scope_checked: int = 0
    scope_crossings: int = 0
    header_disagreements: int = 0  # served-mode says replay but x-nextmodel-cache does not, or back
    request_errors: int = 0
    first_error: str | None = None
    families: dict[str, dict[str, int]] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.request_errors += 1
        self.first_error = self.first_error or what


def live_config(pairs: Sequence[Pair], user: Config | None, workdir: Path, faulty_url: str) -> Config:
    """The in-process proxy: every model the pairs name answered by the demo provider, priced like the user's
    config says (demo prices otherwise), plus two models on the failing upstream; its own temporary files."""
    names = sorted({str(b.get("model")) for p in pairs for b in (p.a, p.b)})
    models: dict[str, ModelConfig] = {}
    for name in names:
        known = user.models.get(name) if user is not None else None
        price = known.price if known is not None and known.price is not None else DEMO_PRICE
        policy = known.cache_policy if known is not None else None
        models[name] = ModelConfig(
            id=name, provider="demo", upstream_id=name, price=price, cache_policy=policy
        )
    for name in (faulty.ERROR_MODEL, faulty.CUT_MODEL):
        models[name] = ModelConfig(id=name, provider="faulty", upstream_id=name, price=DEMO_PRICE)
    providers = {
        "demo": ProviderConfig(name="demo", kind="demo"),
        "faulty": ProviderConfig(
            name="faulty", kind="openai", base_url=f"{faulty_url}/v1", max_retries=0, timeout_s=10.0
        ),
    }
    cache = user.cache if user is not None else CacheConfig()  # the user's policy, our files and scope
    return replace(
        Config(),
        ledger=LedgerConfig(path=str(workdir / "ledger.db")),
        cache=replace(cache, enabled=True, scope="project", path=None),
        providers=providers,
        models=models,
    )


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """An aiohttp app on 127.0.0.1 on a free port; yields its base URL."""
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def in_process_proxy(config: Config) -> AsyncIterator[str]:
    """The proxy itself in this process; yields its /v1 base URL."""
    async with serve(create_app(config)) as url:
        yield f"{url}/v1"


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str, api_key: str | None) -> None:
        self.session, self.base = session, base.rstrip("/")
        self.auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def chat(
        self, body: Mapping[str, Any], project: str, cache: str | None = None
    ) -> tuple[int, Any, bytes]:
        headers = {**self.auth, "x-nextmodel-project": project}
        if cache:
            headers["x-nextmodel-cache"] = cache
        async with self.session.post(f"{self.base}/chat/completions", json=body, headers=headers) as resp:
            return resp.status, resp.headers, await resp.read()


def _replayed(headers: Any, tally: LiveTally | None = None) -> bool:
    """A replay by x-nextmodel-served-mode; x-nextmodel-cache must say the same (hit) or it is counted."""
    replayed = headers.get("x-nextmodel-served-mode") == "exact-cache"
    if tally is not None and replayed != (headers.get("x-nextmodel-cache") == "hit"):
        tally.header_disagreements += 1
    return replayed


async def _stored(client: Client, body: Mapping[str, Any], project: str) -> tuple[int, Any, bytes] | None:
    """The `only` replay of `body` once its answer is in the cache (None if not within STORE_WAIT_S)."""
    deadline = time.monotonic() + STORE_WAIT_S
    while True:
        status, headers, data = await client.chat(body, project, "only")
        if status == 200:
            return status, headers, data
        if status != 504 or time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.01)


async def _pair(client: Client, i: int, pair: Pair, tally: LiveTally) -> None:
    project = f"csb-{i}"
    fam = tally.families.setdefault(pair.family, {"pairs": 0, "replays": 0, "bad_replays": 0})
    fam["pairs"] += 1
    status, headers, first = await client.chat(pair.a, project)
    if status != 200:
        tally.error(f"{pair.id}: a answered {status}")
        return
    if headers.get("x-nextmodel-cache") != "miss":
        tally.a_not_cacheable += 1
    else:
        replay = await _stored(client, pair.a, project)
        if replay is None:
            tally.error(f"{pair.id}: a's answer was not stored within {STORE_WAIT_S:g}s")
        else:
            tally.a_stored += 1
            if not pair.a.get("stream"):
                tally.replay_checked_nonstream += 1
                tally.replay_mismatch_nonstream += replay[2] != first
            tally.scope_checked += 1
            other, _, _ = await client.chat(pair.a, f"csb-other-{i}", "only")
            tally.scope_crossings += other == 200
    status, headers, second = await client.chat(pair.b, project)
    if status != 200:
        tally.error(f"{pair.id}: b answered {status}")
        return
    if _replayed(headers, tally):
        tally.b_replayed += 1
        fam["replays"] += 1
        if pair.same_answer:
            tally.safe_replays += 1
        else:
            tally.bad_replays += 1
            fam["bad_replays"] += 1
            if len(tally.bad_replay_ids) < MAX_IDS:
                tally.bad_replay_ids.append(pair.id)
        if not pair.a.get("stream") and not pair.b.get("stream"):
            tally.replay_checked_nonstream += 1
            tally.replay_mismatch_nonstream += second != first


async def _stream_check(client: Client, i: int, pair: Pair, tally: LiveTally) -> None:
    body = {**pair.a, "stream": True, "stream_options": {"include_usage": True}}
    project = f"csb-stream-{i}"
    status, headers, first = await client.chat(body, project)
    if status != 200 or headers.get("x-nextmodel-cache") != "miss":
        return
    replay = await _stored(client, body, project)
    if replay is None:
        tally.error(f"{pair.id}: streamed answer was not stored within {STORE_WAIT_S:g}s")
        return
    tally.stream_checked += 1
    tally.replay_mismatch_stream += replay[2] != first


def _entries_for(cache_db: Path, models: Sequence[str]) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{cache_db}?mode=ro", uri=True, timeout=5)) as conn:
        marks = ",".join("?" * len(models))
        return conn.execute(
            f"SELECT count(*) FROM cache_entries WHERE model IN ({marks})", models
        ).fetchone()[0]


async def _failures(client: Client, cache_db: Path) -> dict[str, Any]:
    """500s and cut streams, each asked several times: none may be replayed, none may be in the cache file."""
    replayed = 0
    for model in (faulty.ERROR_MODEL, faulty.CUT_MODEL):
        for stream in (False, True):
            body = {
                "model": model,
                "messages": [{"role": "user", "content": "fail"}],
                "temperature": 0,
                "stream": stream,
            }
            for _ in range(FAILURE_REPEATS):
                _, headers, _ = await client.chat(body, "csb-failures")
                replayed += _replayed(headers)
                await asyncio.sleep(0.05)  # give a (wrong) store the time to land before the next try
    await asyncio.sleep(0.3)
    return {
        "failure_requests": 2 * 2 * FAILURE_REPEATS,
        "failures_replayed": replayed,
        "errors_stored": _entries_for(cache_db, [faulty.ERROR_MODEL]),
        "cut_streams_stored": _entries_for(cache_db, [faulty.CUT_MODEL]),
    }


async def run_pairs(
    pairs: Sequence[Pair], base: str, *, api_key: str | None = None, cache_db: Path | None = None
) -> dict[str, Any]:
    """Drive the pairs through the proxy at `base` (/v1 URL); failure checks only when `cache_db` is ours."""
    tally = LiveTally(pairs=len(pairs))
    started = time.perf_counter()
    gate = asyncio.Semaphore(CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as s:
        client = Client(s, base, api_key)

        async def guarded(coro: Any) -> None:
            async with gate:
                try:
                    await coro
                except (aiohttp.ClientError, TimeoutError) as exc:
                    tally.error(f"{type(exc).__name__}: {exc}")

        await asyncio.gather(*(guarded(_pair(client, i, p, tally)) for i, p in enumerate(pairs)))
        sample = [(i, p) for i, p in enumerate(pairs) if not p.a.get("stream")][:STREAM_SAMPLE]
        await asyncio.gather(*(guarded(_stream_check(client, i, p, tally)) for i, p in sample))
        failures: dict[str, Any] = {
            "failure_checks": "not run: they need the in-process proxy (--live without --url)"
        }
        if cache_db is not None:
            failures = await _failures(client, cache_db)
    out = {k: v for k, v in vars(tally).items() if k != "families"}
    out.update(failures)
    out["seconds"] = round(time.perf_counter() - started, 2)
    out["families"] = tally.families
    return out


async def _key_scope(pairs: Sequence[Pair], config: Config, workdir: Path) -> dict[str, Any]:
    """With `cache.scope: key`, two keys of one project: an answer stored under one is never replayed to the
    other (asked with `only`, a 200 is a crossing)."""
    ledger = workdir / "keys.db"
    conn = db.open_db(ledger)
    try:
        one = create_key(conn, KeySettings(project="csb"))[0]
        two = create_key(conn, KeySettings(project="csb"))[0]
    finally:
        conn.close()
    keyed = replace(config, ledger=LedgerConfig(path=str(ledger)), cache=replace(config.cache, scope="key"))
    checked = crossings = 0
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with in_process_proxy(keyed) as base, aiohttp.ClientSession(timeout=timeout) as session:
        first, second = Client(session, base, one.plaintext), Client(session, base, two.plaintext)
        for pair in pairs[:KEY_SCOPE_SAMPLE]:
            status, headers, _ = await first.chat(pair.a, "csb")
            if status != 200 or headers.get("x-nextmodel-cache") != "miss":
                continue
            if await _stored(first, pair.a, "csb") is None:
                continue
            checked += 1
            crossings += (await second.chat(pair.a, "csb", "only"))[0] == 200
    return {"key_scope_checked": checked, "key_scope_crossings": crossings}


async def run_in_process(pairs: Sequence[Pair], user: Config | None) -> dict[str, Any]:
    """Start the failing upstream and the proxy (temporary ledger and cache), run the pairs, clean up."""
    with tempfile.TemporaryDirectory(prefix="nmproxy-cachesafety-") as tmp:
        async with serve(faulty.create_app()) as faulty_url:
            config = live_config(pairs, user, Path(tmp), faulty_url)
            async with in_process_proxy(config) as base:
                result = await run_pairs(pairs, base, cache_db=Path(config.ledger.path))
            result.update(await _key_scope(pairs, config, Path(tmp)))
    result["mode"] = "in-process proxy, demo provider, temporary ledger"
    return result
