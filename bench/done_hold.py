"""The latency cost of holding a stream's `data: [DONE]` until its receipt has committed (issue 10 E).

python bench/done_hold.py [--duration 3]: starts bench/fast_upstream.py (which sends the whole stream in one
write, so without the hold the finish chunk and [DONE] reach the client together) and the proxy with its
ledger, then streams at concurrency 1 and 64. For each stream it measures, at the client, the gap between the
chunk carrying finish_reason and the `data: [DONE]` line: that gap is the wait for the group commit.
Bounded in time, 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from run import HOST, OUT, PY, ROOT, STREAM_BODY, free_port, start, stop, wait_ready, write_config  # noqa: E402


async def _client(port: int, until: float, gaps: list[float], totals: list[float]) -> None:
    url = f"http://{HOST}:{port}/v1/chat/completions"
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < until:
            t0 = time.perf_counter()
            finish = None
            async with s.post(url, data=STREAM_BODY, headers={"Content-Type": "application/json"}) as r:
                async for line in r.content:
                    if finish is None and b'"finish_reason":"' in line:
                        finish = time.perf_counter()
                    elif line == b"data: [DONE]\n" and finish is not None:
                        now = time.perf_counter()
                        gaps.append((now - finish) * 1000)
                        totals.append((now - t0) * 1000)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def measure(port: int, concurrency: int, duration: float) -> dict:
    gaps: list[float] = []
    totals: list[float] = []
    until = time.monotonic() + duration
    await asyncio.gather(*(_client(port, until, gaps, totals) for _ in range(concurrency)))
    return {
        "concurrency": concurrency,
        "streams": len(gaps),
        "hold_p50_ms": round(_pct(gaps, 0.5), 3),
        "hold_p99_ms": round(_pct(gaps, 0.99), 3),
        "hold_mean_ms": round(statistics.fmean(gaps), 3) if gaps else None,
        "stream_p50_ms": round(_pct(totals, 0.5), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    up_port, port = free_port(), free_port()
    upstream = start([PY, str(ROOT / "bench" / "fast_upstream.py"), str(up_port)])
    db = OUT / "done-hold.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    config = write_config(up_port, db, ledger=True, cache=False)
    proxy = start([PY, "-m", "nextmodel_proxy", "serve", "--config", str(config), "--port", str(port)])
    try:
        wait_ready(up_port, post=True)
        wait_ready(port)
        for c in (1, 64):
            r = asyncio.run(measure(port, c, args.duration))
            print(
                f"c={c:<3} {r['streams']:>6} streams  [DONE] held p50 {r['hold_p50_ms']:.3f} ms  "
                f"p99 {r['hold_p99_ms']:.3f} ms  (whole stream p50 {r['stream_p50_ms']:.3f} ms)",
                flush=True,
            )
    finally:
        stop(proxy)
        stop(upstream)


if __name__ == "__main__":
    main()
