"""A lean streaming load generator: raw asyncio protocols (uvloop when installed), no HTTP library, no SDK.

Each of `concurrency` keep-alive connections sends the same request back to back until `duration` ends
(in-flight streams then get at most `grace` seconds to finish; the loop is bounded). Per stream it records the
time to the first SSE event (`data:` in the body, not the headers) and to the end of the response (the
chunked terminator, or Content-Length bytes). Usage (stand-alone):
  python bench/streamgen.py PORT PATH BODY_FILE CONCURRENCY DURATION [HEADER:VALUE ...]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

_TERMINATOR = b"\r\n0\r\n\r\n"


class _Conn(asyncio.Protocol):
    def __init__(self, gen: StreamGen) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self._reset()

    def _reset(self) -> None:
        self.head = b""
        self.in_body = False
        self.tail = b""
        self.remaining = -1  # Content-Length bytes left, or -1 when chunked
        self.status = 0
        self.first = 0.0
        self.t0 = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.t0:
            self.gen.errors += 1
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self) -> None:
        assert self.transport is not None
        if time.perf_counter() >= self.gen.deadline:
            self.transport.close()
            return
        self._reset()
        self.t0 = time.perf_counter()
        self.transport.write(self.gen.request)

    def data_received(self, data: bytes) -> None:
        if not self.in_body:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end].lower(), self.head[end + 4 :]
            self.status = int(head[9:12])
            self.in_body = True
            idx = head.find(b"content-length:")
            if idx >= 0 and b"transfer-encoding: chunked" not in head:
                stop = head.find(b"\r\n", idx)
                self.remaining = int(head[idx + 15 : stop if stop > 0 else None])
        if not self.first and b"data:" in data:
            self.first = time.perf_counter()
        if self.remaining >= 0:
            self.remaining -= len(data)
            done = self.remaining <= 0
        else:
            self.tail = (self.tail + data)[-len(_TERMINATOR) :]
            done = self.tail == _TERMINATOR
        if done:
            now = time.perf_counter()
            if self.status == 200:
                self.gen.ok += 1
                self.gen.latencies.append(now - self.t0)
                self.gen.first_event.append((self.first or now) - self.t0)
            else:
                self.gen.errors += 1
            self.t0 = 0.0
            self.send()


class StreamGen:
    def __init__(self, request: bytes, duration: float) -> None:
        self.request = request
        self.deadline = time.perf_counter() + duration
        self.ok = 0
        self.errors = 0
        self.latencies: list[float] = []
        self.first_event: list[float] = []


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] * 1000


async def run(
    host: str, port: int, request: bytes, *, concurrency: int, duration: float, grace: float = 10.0
) -> dict:
    loop = asyncio.get_running_loop()
    gen = StreamGen(request, duration)
    start = time.perf_counter()
    conns = []
    for _ in range(concurrency):
        _, proto = await loop.create_connection(lambda: _Conn(gen), host, port)
        conns.append(proto)
    done, pending = await asyncio.wait([c.closed for c in conns], timeout=duration + grace)
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    elapsed = time.perf_counter() - start
    return {
        "requests": gen.ok,
        "errors": gen.errors + len(pending),
        "rps": gen.ok / elapsed if elapsed else 0.0,
        "p50_ms": _pct(gen.latencies, 0.50),
        "p99_ms": _pct(gen.latencies, 0.99),
        "ttfb_p50_ms": _pct(gen.first_event, 0.50),
        "ttfb_p99_ms": _pct(gen.first_event, 0.99),
    }


def build_request(
    host: str, port: int, path: str, body: bytes, headers: dict[str, str] | None = None
) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"{extra}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def measure(port: int, path: str, body: bytes, concurrency: int, duration: float, headers=None) -> dict:
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    req = build_request("127.0.0.1", port, path, body, headers)
    return runner(run("127.0.0.1", port, req, concurrency=concurrency, duration=duration))


if __name__ == "__main__":
    hdrs = dict(h.split(":", 1) for h in sys.argv[6:])
    res = measure(
        int(sys.argv[1]),
        sys.argv[2],
        Path(sys.argv[3]).read_bytes(),
        int(sys.argv[4]),
        float(sys.argv[5]),
        hdrs,
    )
    print(json.dumps(res))
