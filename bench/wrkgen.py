"""Non-stream load through `wrk` (Debian package `wrk`): one thread, N keep-alive connections, a Lua script
for the POST body and headers, whose `done()` prints the figures as one JSON line."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

_LUA = """wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d, "mean_us": %.1f}}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""

INSTALL_HINT = "wrk is missing: `apt-get install -y wrk` (Debian package, listed in .ci/apt-packages.txt)"


def available() -> bool:
    return shutil.which("wrk") is not None


def script(path: Path, body: bytes, headers: dict[str, str]) -> Path:
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    path.write_text(_LUA.format(body=body.decode(), headers=lines))
    return path


def measure(
    prefix: list[str],
    url: str,
    lua: Path,
    connections: int,
    duration: float,
) -> dict:
    """Run wrk (prefixed by e.g. `taskset -c 1`) for `duration` seconds; bounded by a subprocess timeout."""
    argv = prefix + [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(lua),
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {done.stdout[-400:]} {done.stderr[-400:]}")
    raw = json.loads(line[len("WRKJSON ") :])
    secs = raw["duration_us"] / 1e6
    errors = raw["non2xx"] + raw["socket_errors"]
    return {
        "requests": raw["requests"] - raw["non2xx"],
        "errors": errors,
        "rps": (raw["requests"] - raw["non2xx"]) / secs if secs else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "mean_ms": raw["mean_us"] / 1000,
    }
