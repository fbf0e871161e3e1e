"""Peak RSS of `nmproxy serve` while 20 clients at once get 10 MB upstream answers, with and without caps.

    .venv/bin/python bench/rss_caps.py [--size-mb 10] [--clients 20]

The upstream is tests/hostile_sizes.py (huge-json: one JSON body; huge-stream: ~4 KB events adding up to the
size). For each case the proxy is a fresh process; RSS is read from /proc/<pid>/status (VmRSS before, VmHWM =
peak after). Cases: the default caps (64 MiB answer, 8 MiB event: the answers pass whole), and
max_answer_bytes 1 MiB (the answers are cut at the cap with a 502 upstream_too_large).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from hostile_sizes import HostileState, create_hostile_app  # noqa: E402

NMPROXY = str(Path(sys.executable).with_name("nmproxy"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


async def one_case(upstream_url: str, caps: str, model: str, stream: bool, clients: int) -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix="rss-"))
    port = free_port()
    config = folder / "providers.yaml"
    config.write_text(
        f"server: {{host: 127.0.0.1, port: {port}}}\nledger: {{path: {folder / 'ledger.db'}}}\n"
        f"providers:\n  hostile: {{kind: openai, base_url: {upstream_url}, max_retries: 0{caps}}}\n"
        "models:\n"
        "  huge-json: {provider: hostile, price: {input: 1, output: 1}}\n"
        "  huge-stream: {provider: hostile, price: {input: 1, output: 1}}\n"
    )
    log = (folder / "serve.log").open("wb")
    proc = subprocess.Popen([NMPROXY, "serve", "--config", str(config)], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            for _ in range(300):
                try:
                    async with s.get(base + "/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
            async with s.post(base + "/v1/chat/completions", json=body) as r:  # warm up: one answer
                await r.read()
            before = status_kb(proc.pid, "VmRSS")

            async def ask() -> tuple[int, int]:
                async with s.post(base + "/v1/chat/completions", json=body) as r:
                    return r.status, len(await r.read())

            results = await asyncio.gather(*(ask() for _ in range(clients)))
        peak = status_kb(proc.pid, "VmHWM")
        after = status_kb(proc.pid, "VmRSS")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    return {
        "model": model,
        "caps": caps.strip(", ") or "defaults (64 MiB answer, 8 MiB event)",
        "statuses": sorted({status for status, _ in results}),
        "bytes_to_each_client": max(n for _, n in results),
        "rss_before_mb": round(before / 1024, 1),
        "peak_rss_mb": round(peak / 1024, 1),
        "rss_after_mb": round(after / 1024, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=float, default=10)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()
    state = HostileState(size=int(args.size_mb * 1024 * 1024))
    upstream = TestServer(create_hostile_app(state), host="127.0.0.1")
    await upstream.start_server()
    url = str(upstream.make_url("/v1")).rstrip("/")
    try:
        for caps in ("", ", max_answer_bytes: 1048576"):
            for model, stream in (("huge-json", False), ("huge-stream", True)):
                print(await one_case(url, caps, model, stream, args.clients), flush=True)
    finally:
        await upstream.close()


if __name__ == "__main__":
    asyncio.run(main())
