"""CacheSafety Bench speed: non-semantic strategies over 10,000 pairs, and --live over the shipped data.

    .venv/bin/python -m bench.cachesafety_bench        # `make bench` runs it pinned to one core

Prints one JSON line. The 10,000 pairs are the shipped 1,680 cycled (ids made unique), written to bench/out.
Both figures are whole `nmproxy bench cachesafety` processes (start-up, parsing, scoring, output).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson

from nextmodel_proxy.cachesafety import dataset

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
NMPROXY = str(Path(sys.executable).parent / "nmproxy")
PAIRS = 10_000


def big_file() -> Path:
    lines = dataset.shipped_path().read_bytes().splitlines()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "cachesafety-10k.jsonl"
    rows = []
    for i in range(PAIRS):
        obj = orjson.loads(lines[i % len(lines)])
        obj["id"] = f"{obj['id']}-{i}"
        rows.append(orjson.dumps(obj))
    path.write_bytes(b"\n".join(rows) + b"\n")
    return path


def timed(argv: list[str]) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, timeout=600, check=True)
    return time.perf_counter() - started, json.loads(done.stdout)


def main() -> None:
    config = ["--config", str(ROOT / "providers.yaml")]
    path = big_file()
    offline_s, offline = timed([NMPROXY, "bench", "cachesafety", *config, "--dataset", str(path), "--json"])
    live_s, live = timed([NMPROXY, "bench", "cachesafety", *config, "--live", "--json"])
    print(
        json.dumps(
            {
                "cores_allowed": len(os.sched_getaffinity(0)),
                "offline_pairs": offline["pairs"],
                "offline_strategies": len(offline["strategies"])
                - sum("skipped" in s for s in offline["strategies"]),
                "offline_process_s": round(offline_s, 2),
                "live_pairs": live["live"]["pairs"],
                "live_requests_s": live["live"]["seconds"],
                "live_process_s": round(live_s, 2),
                "live_bad_replays": live["live"]["bad_replays"],
            }
        )
    )


if __name__ == "__main__":
    main()
