"""Many concurrent open streams: a lean client holds N streams open through the proxy (issue 16: 10,000 under 1 GiB).

The client opens N keep-alive connections (at most RAMP = 100 connecting or waiting for their first event at a time,
so the proxy's accept queue never overflows), sends one streamed chat request on each (its body contains
`hold`, so bench/paced_upstream.py sends the first event after 10 ms, then one every 5 s for about a minute),
and counts a stream open once its first SSE event arrived. When all N are open (or the deadline passed) it
prints one JSON line and waits for a line on stdin (the caller reads the proxy's RSS meanwhile), then hangs up
on every stream at once. Bounded: `deadline` seconds to open, at most `deadline` more waiting for stdin.
Raw asyncio protocols (uvloop when installed); loopback only. The proxy holds two sockets per stream: where
the open-file hard limit cannot be raised (no CAP_SYS_RESOURCE) N is capped to fit it and the result says so.

  python bench/open_streams.py PORT N DEADLINE_S [HEADER:VALUE ...]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from streamgen import build_request

BODY = json.dumps(
    {
        "model": "bench-model",
        "temperature": 0.7,
        "stream": True,
        "messages": [{"role": "user", "content": "hold this stream open"}],
    }
).encode()


# Streams connecting or waiting for their first event at once: below the proxy's listen backlog (aiohttp's
# default 128), since a burst past it loses SYNs and those connections wait for the 1 s retransmit.
RAMP = 100


class _Held(asyncio.Protocol):
    """One connection: send the request, note the first event (or a failure), then ignore what follows."""

    __slots__ = ("holder", "transport", "seen", "settled")

    def __init__(self, holder: Holder) -> None:
        self.holder = holder
        self.transport: asyncio.Transport | None = None
        self.seen = b""
        self.settled = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.holder.request)

    def data_received(self, data: bytes) -> None:
        if self.settled:
            return
        self.seen += data  # the head and the first event: a few KB at most
        if not self.seen.startswith(b"HTTP/1.1 200") and len(self.seen) >= 12:
            self.settle(False)
            if self.transport is not None:
                self.transport.close()
        elif b"data:" in self.seen:
            self.settle(True)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.settled:
            self.settle(False)

    def settle(self, ok: bool) -> None:
        self.settled = True
        self.seen = b""
        self.holder.settled(ok)


class Holder:
    def __init__(self, request: bytes, ramp: int) -> None:
        self.request = request
        self.slots = asyncio.Semaphore(ramp)
        self.open = 0
        self.errors = 0
        self.conns: list[_Held] = []
        self.changed = asyncio.Event()

    def settled(self, ok: bool) -> None:
        if ok:
            self.open += 1
        else:
            self.errors += 1
        self.slots.release()
        self.changed.set()

    def close_all(self) -> None:
        for conn in self.conns:
            if conn.transport is not None:
                conn.transport.close()


async def run(port: int, n: int, deadline_s: float, headers: dict[str, str], ramp: int = RAMP) -> None:
    loop = asyncio.get_running_loop()
    holder = Holder(build_request("127.0.0.1", port, "/v1/chat/completions", BODY, headers), ramp)
    start = time.perf_counter()
    deadline = start + deadline_s

    async def opener() -> None:
        for _ in range(n):
            await holder.slots.acquire()
            if time.perf_counter() > deadline:
                return
            try:
                _, proto = await loop.create_connection(lambda: _Held(holder), "127.0.0.1", port)
            except OSError:
                holder.errors += 1
                holder.slots.release()
                continue
            holder.conns.append(proto)

    task = loop.create_task(opener())
    while holder.open + holder.errors < n and time.perf_counter() < deadline:
        holder.changed.clear()
        try:
            await asyncio.wait_for(holder.changed.wait(), max(0.01, deadline - time.perf_counter()))
        except TimeoutError:
            break
    task.cancel()
    print(
        json.dumps(
            {
                "streams": n,
                "open": holder.open,
                "errors": holder.errors,
                "open_s": round(time.perf_counter() - start, 2),
            }
        ),
        flush=True,
    )
    try:  # the caller reads the proxy's RSS now, then says go (a line on stdin) or closes stdin
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), deadline_s)
    except TimeoutError:
        pass
    holder.close_all()
    await asyncio.sleep(0.2)


def main() -> None:
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    port, n, deadline_s = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    headers = dict(h.split(":", 1) for h in sys.argv[4:])
    runner(run(port, n, deadline_s, headers))


if __name__ == "__main__":
    main()


# --- the scenario, as bench/run.py runs it (`--open-streams N`) -------------------------------------------


_RESERVE = 256  # the proxy's other files: ledger and cache databases, logs, the loop, /healthz


def raise_nofile(n: int) -> int:
    """Let this process and its children hold N streams (a client and an upstream socket each in the proxy);
    returns how many streams fit when the limit cannot be raised that far (not root)."""
    import resource

    want = 2 * n + _RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return n
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
        return n
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return max(1, (hard - _RESERVE) // 2)


def scenario(
    n: int, up_port: int, proxy_factory, pinned, rss_mb, core: int, deadline_s: float = 120.0
) -> dict:
    """A fresh nmproxy (key, ledger, cache: everything on) holding N streams: RSS idle, all open, peak, after."""
    import subprocess
    from pathlib import Path

    proxy = proxy_factory(
        "nmproxy-open-streams", up_port, keyed=True, server_extra=f", max_connections: {n + 100}"
    )
    pid = proxy.proc.pid
    idle = rss_mb(pid)
    argv = [sys.executable, str(Path(__file__).with_name("open_streams.py")), str(proxy.port), str(n)]
    argv += [str(deadline_s)] + [f"{k}:{v}" for k, v in proxy.headers.items()]
    client = subprocess.Popen(
        pinned(core, argv, priority=False), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert client.stdout is not None and client.stdin is not None
        line = client.stdout.readline()  # the client prints by its deadline, or exits
        result = json.loads(line) if line.startswith(b"{") else {"error": "the client gave no result"}
        result["rss_idle_mb"] = round(idle, 1)
        result["rss_open_mb"] = round(rss_mb(pid), 1)
        result["rss_peak_mb"] = round(_status_mb(pid, "VmHWM"), 1)
        if result.get("open"):
            result["kb_per_open_stream"] = round((result["rss_open_mb"] - idle) * 1024 / result["open"], 1)
        client.stdin.write(b"go\n")
        client.stdin.close()
        client.wait(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(timeout=10)
        time.sleep(1.0)
        result["rss_after_close_mb"] = round(rss_mb(pid), 1)
        proxy.proc.terminate()
        proxy.proc.wait(timeout=60)
    return result


def _status_mb(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")
