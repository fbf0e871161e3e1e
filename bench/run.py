"""`make bench`: nmproxy against the upstream hit directly and a bare aiohttp floor, in one bounded run (issue 16).

Cores (2-core VM): the server under test (proxy or floor) is pinned alone to core 0; the paced upstream
(bench/paced_upstream.py) and the load generator share core 1. For `direct` the load generator moves to core 0,
which is otherwise idle then, so the upstream keeps core 1. Load generators: `wrk` (one thread, Lua script for the
POST body) for non-stream scenarios; bench/streamgen.py (raw asyncio protocols, uvloop) for streams, timing the
first SSE event. Every scenario is bounded in time; only 127.0.0.1 is used.
Results: printed, bench/out/results.json; `--profile` adds py-spy flame graphs in bench/out/.
"""

from __future__ import annotations

import argparse
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
import report  # noqa: E402
import wrkgen  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PY = sys.executable
HOST = "127.0.0.1"
SUT_CORE, AUX_CORE = 0, 1
CHAT = "/v1/chat/completions"


def _body(
    model: str = "bench-model", stream: bool = False, temperature: float = 0.7, text: str = ""
) -> bytes:
    return json.dumps(
        {
            "model": model,
            "temperature": temperature,
            **({"stream": True} if stream else {}),
            "messages": [{"role": "user", "content": text or "Summarise the benchmark in one line."}],
        }
    ).encode()


BODY = _body()
STREAM_BODY = _body(stream=True, text="Stream the benchmark.")
SLOW_BODY = _body(text="A slow question (the upstream answers after 100 ms).")
HIT_BODY = _body(temperature=0, text="A cacheable question.")
HIT_STREAM_BODY = _body(temperature=0, stream=True, text="A cacheable stream.")
RESPONSES_BODY = json.dumps(
    {"model": "bench-native", "temperature": 0.7, "input": "Summarise the benchmark."}
).encode()
MESSAGES_BODY = json.dumps(
    {
        "model": "bench-claude",
        "max_tokens": 256,
        "temperature": 0.7,
        "messages": [{"role": "user", "content": "Summarise the benchmark."}],
    }
).encode()

# (scenario name, load generator, path, body, connections)
BASE = [
    ("non-stream", "wrk", CHAT, BODY, 1),
    ("non-stream", "wrk", CHAT, BODY, 64),
    ("stream", "stream", CHAT, STREAM_BODY, 64),
    ("upstream 100 ms", "wrk", CHAT, SLOW_BODY, 256),
    ("responses passthrough", "wrk", "/v1/responses", RESPONSES_BODY, 64),
    ("messages passthrough", "wrk", "/v1/messages", MESSAGES_BODY, 64),
]
CACHE_HITS = [
    ("cache hit", "wrk", CHAT, HIT_BODY, 1),
    ("cache hit", "wrk", CHAT, HIT_BODY, 64),
    ("cache hit stream", "stream", CHAT, HIT_STREAM_BODY, 64),
]
OPEN = [("non-stream", "wrk", CHAT, BODY, 1), ("non-stream", "wrk", CHAT, BODY, 64)]
PROFILED = [("non-stream", "wrk", CHAT, BODY, 64), ("cache hit", "wrk", CHAT, HIT_BODY, 64)]


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


def start(argv: list[str], core: int = SUT_CORE) -> subprocess.Popen:
    return subprocess.Popen(
        pinned(core, argv),
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
        proc.wait(timeout=10)


def write_config(upstream_port: int, db: Path, *, ledger: bool = True, cache: bool = True) -> Path:
    """A fresh ledger at `db` and a config naming it (also used by done_hold.py)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    path = OUT / f"bench-{db.stem}.yaml"
    path.write_text(
        f"server: {{host: {HOST}, port: 0}}\n"
        f"ledger: {{path: {db}, enabled: {str(ledger).lower()}}}\n"
        f"cache: {{enabled: {str(cache).lower()}}}\n"
        "providers:\n"
        f"  bench: {{kind: openai, base_url: 'http://{HOST}:{upstream_port}/v1', api_key_env: NMPROXY_BENCH_KEY}}\n"
        f"  claude: {{kind: anthropic, base_url: 'http://{HOST}:{upstream_port}', api_key_env: NMPROXY_BENCH_KEY}}\n"
        "models:\n"
        "  bench-model: {provider: bench, price: {input: 0.15, output: 0.60, cached_input: 0.075}}\n"
        "  bench-native: {provider: bench, endpoints: [chat, responses], price: {input: 0.15, output: 0.60}}\n"
        "  bench-claude: {provider: claude, price: {input: 3, output: 15}}\n"
    )
    return path


def create_key(config: Path) -> str:
    done = subprocess.run(
        [PY, "-m", "nextmodel_proxy", "keys", "create", "--project", "bench", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    key = next((w for w in done.stdout.split() if w.startswith("nm-")), None)
    if key is None:
        raise RuntimeError(f"could not create a key: {done.stdout[-300:]} {done.stderr[-300:]}")
    return key


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> int:
    req = urllib.request.Request(  # noqa: S310
        f"http://{HOST}:{port}{path}", data=body, headers={"Content-Type": "application/json", **headers}
    )
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
        r.read()
        return r.status


def load(
    kind: str, port: int, path: str, body: bytes, conns: int, duration: float, headers, core: int
) -> dict:
    if kind == "wrk":
        lua = wrkgen.script(OUT / "wrk-body.lua", body, {"Content-Type": "application/json", **headers})
        return wrkgen.measure(pinned(core, []), f"http://{HOST}:{port}{path}", lua, conns, duration)
    body_file = OUT / "stream-body.json"
    body_file.write_bytes(body)
    argv = [
        PY,
        str(ROOT / "bench" / "streamgen.py"),
        str(port),
        path,
        str(body_file),
        str(conns),
        str(duration),
    ]
    argv += [f"{k}:{v}" for k, v in headers.items()]
    done = subprocess.run(pinned(core, argv), capture_output=True, text=True, timeout=duration + 30)
    lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
    if not lines:
        raise RuntimeError(f"streamgen gave no result: {done.stderr[-400:]}")
    return json.loads(lines[-1])


def run_scenarios(
    target: str, port: int, scenarios, duration: float, headers=None, core=AUX_CORE
) -> list[dict]:
    results = []
    for name, kind, path, body, conns in scenarios:
        res = load(kind, port, path, body, conns, duration, headers or {}, core)
        row = {"target": target, "scenario": name, "concurrency": conns, "loadgen": kind, **res}
        results.append(row)
        ttfb = f"  first event p50 {res['ttfb_p50_ms']:.2f} ms" if "ttfb_p50_ms" in res else ""
        print(
            f"  {name:<24} c={conns:<4} {res['rps']:>8.0f} req/s  p50 {res['p50_ms']:.3f} ms  "
            f"p99 {res['p99_ms']:.3f} ms{ttfb}  errors {res['errors']}",
            flush=True,
        )
    return results


def profile(label: str, pid: int, port: int, duration: float, headers: dict[str, str]) -> list[str]:
    """py-spy flame graphs (SVG) and collapsed stacks of the pinned proxy under PROFILED scenarios."""
    spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    if not Path(spy).exists():
        print("  (py-spy missing: `.venv/bin/pip install py-spy` to profile)", flush=True)
        return []
    made = []
    for name, kind, path, body, conns in PROFILED:
        for fmt, ext in (("flamegraph", "svg"), ("raw", "txt")):
            out = OUT / f"flame-{label}-{name.replace(' ', '-')}-c{conns}.{ext}"
            argv = [spy, "record", "--pid", str(pid), "--rate", "200", "--duration", str(round(duration))]
            argv += ["--format", fmt, "--output", str(out), "--nonblocking"]
            spy_proc = subprocess.Popen(
                pinned(AUX_CORE, argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            time.sleep(0.3)
            load(kind, port, path, body, conns, duration, headers, AUX_CORE)
            try:
                spy_proc.wait(timeout=duration + 30)
            except subprocess.TimeoutExpired:
                spy_proc.kill()
                spy_proc.wait(timeout=10)
            made.append(str(out.relative_to(ROOT)))
            print(f"  profiled {name} c={conns}: {out.relative_to(ROOT)}", flush=True)
    return made


def run_proxy(
    label: str, config: Path, duration: float, scenarios, keyed: bool, prof: bool
) -> tuple[list, dict]:
    headers = {"Authorization": f"Bearer {create_key(config)}"} if keyed else {}
    port = free_port()
    argv = [PY, "-m", "nextmodel_proxy", "serve", "--config", str(config), "--port", str(port)]
    proc = start(argv + ["--log-level", "warning"])
    info: dict = {"keys": keyed}
    try:
        info["ready_s"] = wait_ready(port)
        info["idle_rss_mb"] = rss_mb(proc.pid)
        if any(s[3] in (HIT_BODY, HIT_STREAM_BODY) for s in scenarios):
            for body in (HIT_BODY, HIT_STREAM_BODY):  # prime the cache: the hit scenarios measure hits only
                post(port, CHAT, body, headers)
        results = run_scenarios(label, port, scenarios, duration, headers)
        if prof:
            info["profiles"] = profile(label, proc.pid, port, duration, headers)
        info["rss_after_mb"] = rss_mb(proc.pid)
    finally:
        stop(proc)
    return results, info


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per scenario (whole seconds)")
    parser.add_argument("--micro", choices=("none", "quick", "all"), default="quick", help="micro-benchmarks")
    parser.add_argument("--ledger-rows", type=int, default=1_000_000, help="receipts in --micro all's ledger")
    parser.add_argument("--profile", action="store_true", help="py-spy flame graphs of nmproxy (bench/out/)")
    args = parser.parse_args()
    if not wrkgen.available():
        sys.exit(wrkgen.INSTALL_HINT)
    OUT.mkdir(parents=True, exist_ok=True)
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {AUX_CORE})
    began = time.perf_counter()
    up_port = free_port()
    upstream = start([PY, str(ROOT / "bench" / "paced_upstream.py"), str(up_port)], core=AUX_CORE)
    results: list[dict] = []
    meta: dict = {
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "duration_s": args.duration,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    try:
        wait_ready(up_port, post=True)
        print("upstream hit directly (load generator on core 0):", flush=True)
        results += run_scenarios("direct", up_port, BASE, args.duration, core=SUT_CORE)
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
            results += run_scenarios("floor", fp, BASE, args.duration)
        finally:
            stop(floor)
        for label, keyed, scenarios in (("nmproxy", True, BASE + CACHE_HITS), ("nmproxy-open", False, OPEN)):
            print(f"{label} ({'keys on' if keyed else 'open mode'}; ledger and cache on):", flush=True)
            config = write_config(up_port, OUT / f"{label}.db")
            res, info = run_proxy(label, config, args.duration, scenarios, keyed, args.profile and keyed)
            results += res
            meta[label] = info
            print(
                f"  ready in {info['ready_s'] * 1000:.0f} ms, idle RSS {info['idle_rss_mb']:.1f} MB",
                flush=True,
            )
    finally:
        stop(upstream)
    derived = report.derive(results)
    if args.micro != "none":
        derived["micro"] = micro(args.ledger_rows, args.micro == "all")
    meta["derived"] = derived
    meta["elapsed_s"] = round(time.perf_counter() - began, 1)
    (OUT / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(report.table(results))
    print(json.dumps(derived, indent=2))
    print(f"make bench took {meta['elapsed_s']} s", flush=True)


def micro(ledger_rows: int, everything: bool) -> dict:
    """Ledger commits/s and raw cache lookups/s; with `everything`, also the 1M-receipt ledger, price resolution,
    cache safety and endpoint translation benches (several minutes)."""
    out = {}
    runs = {
        "ledger": [PY, "bench/ledger_bench.py", "--n", "100000"],
        "cache": [PY, "-m", "bench.cache_bench"],
    }
    if everything:
        runs |= {
            "ledger_1m": [
                PY,
                "bench/gen_ledger.py",
                "--n",
                str(ledger_rows),
                "--db",
                str(OUT / "gen-ledger.db"),
            ],
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


if __name__ == "__main__":
    main()
