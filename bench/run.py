"""`make bench`: the proxy against the upstream hit directly and a bare aiohttp floor, in one run.

Servers are pinned to core 0 one at a time; the fast upstream and the load generator share core 1.
Every scenario is bounded in time; only 127.0.0.1 is used. Results: printed, and bench/out/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import loadgen  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PY = sys.executable
HOST = "127.0.0.1"
BODY = json.dumps(
    {
        "model": "bench-model",
        "temperature": 0.7,
        "messages": [{"role": "user", "content": "Summarise the benchmark in one line."}],
    }
).encode()
STREAM_BODY = json.dumps(
    {
        "model": "bench-model",
        "temperature": 0.7,
        "stream": True,
        "messages": [{"role": "user", "content": "Stream the benchmark."}],
    }
).encode()
HIT_BODY = json.dumps(
    {
        "model": "bench-model",
        "temperature": 0,
        "messages": [{"role": "user", "content": "A cacheable question."}],
    }
).encode()
TEE_BODY = json.dumps(
    {
        "model": "bench-model",
        "temperature": 0,
        "stream": True,
        "messages": [{"role": "user", "content": "A cacheable stream."}],
    }
).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def pinned(core: int, argv: list[str]) -> list[str]:
    return (
        ["taskset", "-c", str(core)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
    ) + argv


def wait_ready(port: int, path: str = "/healthz", timeout: float = 15.0, post: bool = False) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                if not post:
                    with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=1) as r:  # noqa: S310
                        if r.status == 200:
                            return time.perf_counter() - start
                else:
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"server on port {port} not ready after {timeout}s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_config(upstream_port: int, db: Path, *, ledger: bool, cache: bool) -> Path:
    path = OUT / f"bench-{'l' if ledger else 'n'}{'c' if cache else 'n'}.yaml"
    path.write_text(
        f"server: {{host: {HOST}, port: 0}}\n"
        f"ledger: {{path: {db}, enabled: {str(ledger).lower()}}}\n"
        f"cache: {{enabled: {str(cache).lower()}}}\n"
        "providers:\n"
        f"  bench: {{kind: openai, base_url: 'http://{HOST}:{upstream_port}/v1', api_key_env: NMPROXY_BENCH_KEY}}\n"
        "models:\n"
        "  bench-model: {provider: bench, price: {input: 0.15, output: 0.60, cached_input: 0.075}}\n"
    )
    return path


def scenario(
    name: str,
    port: int,
    body: bytes,
    concurrency: int,
    duration: float,
    path: str,
    headers: dict[str, str] | None = None,
) -> dict:
    req = loadgen.build_request(HOST, port, path, body, headers)
    res = asyncio.run(loadgen.run(HOST, port, req, concurrency=concurrency, duration=duration))
    out = {"scenario": name, "concurrency": concurrency, **res.summary()}
    print(
        f"  {name:<28} c={concurrency:<3} {out['rps']:>8.0f} req/s  p50 {out['p50_ms']:.3f} ms  "
        f"p99 {out['p99_ms']:.3f} ms  ttfb p50 {out['ttfb_p50_ms']:.3f} ms  errors {out['errors']}",
        flush=True,
    )
    return out


def suite(
    label: str, port: int, path: str, duration: float, extra: list[tuple[str, bytes, int]] = ()
) -> list[dict]:
    results = []
    for c in (1, 16, 64):
        results.append(scenario(f"{label} non-stream", port, BODY, c, duration, path))
    results.append(scenario(f"{label} stream", port, STREAM_BODY, 1, duration, path))
    results.append(scenario(f"{label} stream", port, STREAM_BODY, 64, duration, path))
    for name, body, c, headers in extra:
        results.append(scenario(f"{label} {name}", port, body, c, duration, path, headers))
    for r in results:
        r["target"] = label
    return results


def start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        pinned(0, argv),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "NMPROXY_BENCH_KEY": "sk-bench"},
    )


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def run_proxy(label: str, config: Path, duration: float, extra=()) -> tuple[list[dict], dict]:
    port = free_port()
    proc = start(
        [
            PY,
            "-m",
            "nextmodel_proxy",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    )
    try:
        ready = wait_ready(port)
        idle = rss_mb(proc.pid)
        if extra:  # prime the cache so the hit scenario measures hits only
            asyncio.run(
                loadgen.run(
                    HOST,
                    port,
                    loadgen.build_request(HOST, port, "/v1/chat/completions", HIT_BODY),
                    concurrency=1,
                    duration=0.5,
                    max_requests=2,
                )
            )
        results = suite(label, port, "/v1/chat/completions", duration, extra)
    finally:
        stop(proc)
    return results, {"ready_s": ready, "idle_rss_mb": idle}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per scenario")
    parser.add_argument("--ledger-rows", type=int, default=1_000_000, help="receipts in the generated ledger")
    parser.add_argument("--skip-micro", action="store_true", help="only the HTTP scenarios")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    up_port = free_port()
    upstream = subprocess.Popen(
        pinned(1, [PY, str(ROOT / "bench" / "fast_upstream.py"), str(up_port)]), cwd=ROOT
    )
    results: list[dict] = []
    meta: dict = {"cores": os.cpu_count(), "python": sys.version.split()[0], "duration_s": args.duration}
    try:
        wait_ready(up_port, post=True)
        print("upstream hit directly:", flush=True)
        results += suite("direct", up_port, "/v1/chat/completions", args.duration)
        print("bare aiohttp floor:", flush=True)
        floor = start(
            [
                PY,
                str(ROOT / "bench" / "floor_proxy.py"),
                str(fp := free_port()),
                f"http://{HOST}:{up_port}/v1",
            ]
        )
        try:
            wait_ready(fp, post=True)
            results += suite("floor", fp, "/v1/chat/completions", args.duration)
        finally:
            stop(floor)
        for label, ledger, cache in (("nmproxy", True, True), ("nmproxy-no-ledger", False, False)):
            print(f"{label}:", flush=True)
            db = OUT / f"{label}.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            extra = (
                [
                    ("cache-hit", HIT_BODY, 1, None),
                    ("cache-hit", HIT_BODY, 64, None),
                    # the same cacheable stream, teed and stored every time (refresh) vs not teed (skip)
                    ("stream tee-on", TEE_BODY, 1, {"x-nextmodel-cache": "refresh"}),
                    ("stream tee-off", TEE_BODY, 1, {"x-nextmodel-cache": "skip"}),
                ]
                if cache
                else []
            )
            res, info = run_proxy(
                label, write_config(up_port, db, ledger=ledger, cache=cache), args.duration, extra
            )
            results += res
            meta[label] = info
            print(
                f"  ready in {info['ready_s'] * 1000:.0f} ms, idle RSS {info['idle_rss_mb']:.1f} MB",
                flush=True,
            )
    finally:
        stop(upstream)
    report = derive(results)
    if not args.skip_micro:
        report["micro"] = micro(args.ledger_rows)
    meta["derived"] = report
    (OUT / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(json.dumps(report, indent=2))


def micro(ledger_rows: int) -> dict:
    """Ledger commits/s, the 1M-receipt spend/export timings, and raw cache lookups/s (each prints a JSON line)."""
    out = {}
    runs = {
        "ledger": [PY, "bench/ledger_bench.py", "--n", "100000"],
        "ledger_1m": [PY, "bench/gen_ledger.py", "--n", str(ledger_rows), "--db", str(OUT / "gen-ledger.db")],
        "cache": [PY, "-m", "bench.cache_bench"],
        "price_resolution": [PY, "bench/price_bench.py", "--n", "200000"],
        "cachesafety": [PY, "-m", "bench.cachesafety_bench"],
        "endpoints": [PY, "-m", "bench.endpoints_bench"],
    }
    for name, argv in runs.items():
        print(f"{name}: {' '.join(argv[1:])}", flush=True)
        done = subprocess.run(pinned(0, argv), cwd=ROOT, capture_output=True, text=True, timeout=900)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        out[name] = json.loads(lines[-1]) if lines else {"error": done.stderr[-500:]}
        print(f"  {json.dumps(out[name])}", flush=True)
    return out


def derive(results: list[dict]) -> dict:
    """The figures the issues set targets for."""

    def get(target: str, scen: str, c: int) -> dict:
        return next(r for r in results if r["scenario"] == f"{target} {scen}" and r["concurrency"] == c)

    out = {}
    for target in ("floor", "nmproxy", "nmproxy-no-ledger"):
        try:
            out[target] = {
                "added_p50_ms_c1": get(target, "non-stream", 1)["p50_ms"]
                - get("direct", "non-stream", 1)["p50_ms"],
                "rps_c64": get(target, "non-stream", 64)["rps"],
                "stream_rps_c64_vs_direct": get(target, "stream", 64)["rps"]
                / get("direct", "stream", 64)["rps"],
                "stream_ttfb_added_p50_ms_c1": get(target, "stream", 1)["ttfb_p50_ms"]
                - get("direct", "stream", 1)["ttfb_p50_ms"],
            }
        except StopIteration:
            continue
    if "floor" in out and "nmproxy" in out:
        out["nmproxy_rps_vs_floor"] = out["nmproxy"]["rps_c64"] / out["floor"]["rps_c64"]
    try:
        hit = get("nmproxy", "cache-hit", 1)
        out["cache_hit"] = {
            "added_p50_ms_c1": hit["p50_ms"] - get("direct", "non-stream", 1)["p50_ms"],
            "rps_c64": get("nmproxy", "cache-hit", 64)["rps"],
        }
        out["tee_ttfb_added_p50_ms"] = (
            get("nmproxy", "stream tee-on", 1)["ttfb_p50_ms"]
            - get("nmproxy", "stream tee-off", 1)["ttfb_p50_ms"]
        )
        out["ledger_added_p50_ms_c1"] = (
            get("nmproxy", "non-stream", 1)["p50_ms"] - get("nmproxy-no-ledger", "non-stream", 1)["p50_ms"]
        )
        out["ledger_rps_c64_vs_off"] = (
            get("nmproxy", "non-stream", 64)["rps"] / get("nmproxy-no-ledger", "non-stream", 64)["rps"]
        )
    except StopIteration:
        pass
    return out


if __name__ == "__main__":
    main()
