"""A small keep-alive HTTP/1.1 load generator (asyncio streams), fast enough not to be the bottleneck.

Each of `concurrency` connections sends requests back to back for `duration` seconds (bounded).
Reports requests/s, latency percentiles and, for streams, time to the first body byte.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field


@dataclass
class Result:
    ok: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    ttfb: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    def summary(self) -> dict[str, float]:
        def pct(values: list[float], p: float) -> float:
            if not values:
                return float("nan")
            values = sorted(values)
            return values[min(len(values) - 1, int(p * len(values)))] * 1000

        return {
            "requests": self.ok,
            "errors": self.errors,
            "rps": self.ok / self.elapsed if self.elapsed else 0.0,
            "p50_ms": pct(self.latencies, 0.50),
            "p99_ms": pct(self.latencies, 0.99),
            "ttfb_p50_ms": pct(self.ttfb, 0.50),
            "ttfb_p99_ms": pct(self.ttfb, 0.99),
            "mean_ms": statistics.fmean(self.latencies) * 1000 if self.latencies else float("nan"),
        }


def build_request(
    host: str, port: int, path: str, body: bytes, headers: dict[str, str] | None = None
) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer bench\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _read_response(reader: asyncio.StreamReader, t0: float, res: Result) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        first = True
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.strip().split(b";")[0], 16)
            if first:
                res.ttfb.append(time.perf_counter() - t0)
                first = False
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            await reader.readexactly(size + 2)
    else:
        idx = lower.find(b"content-length:")
        end = lower.find(b"\r\n", idx)
        length = int(lower[idx + 15 : end]) if idx >= 0 else 0
        await reader.readexactly(length)
        res.ttfb.append(time.perf_counter() - t0)
    return status


async def _worker(
    host: str, port: int, request: bytes, deadline: float, res: Result, max_requests: int
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline and res.ok + res.errors < max_requests:
            t0 = time.perf_counter()
            writer.write(request)
            status = await asyncio.wait_for(_read_response(reader, t0, res), timeout=30)
            res.latencies.append(time.perf_counter() - t0)
            if status == 200:
                res.ok += 1
            else:
                res.errors += 1
    finally:
        writer.close()


async def run(
    host: str, port: int, request: bytes, *, concurrency: int, duration: float, max_requests: int = 10_000_000
) -> Result:
    res = Result()
    start = time.perf_counter()
    deadline = start + duration
    await asyncio.gather(
        *(_worker(host, port, request, deadline, res, max_requests) for _ in range(concurrency))
    )
    res.elapsed = time.perf_counter() - start
    return res
