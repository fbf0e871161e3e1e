"""Responses / Messages passthrough vs chat passthrough, and what translation adds (python -m bench.endpoints_bench).

The proxy (ledger on, cache off) is pinned to core 0, the canned upstream and the load generator to core 1.
Two measures: end-to-end latency per endpoint at concurrency 1 and 16 through the real proxy, and the CPU time
of the translation alone (request + answer, non-stream and stream) per request, in process, median of many.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import loadgen  # noqa: E402
from run import HOST, OUT, PY, ROOT, free_port, pinned, start, stop, wait_ready  # noqa: E402

CHAT = {
    "model": "M",
    "temperature": 0.7,
    "messages": [{"role": "user", "content": "Summarise the benchmark."}],
}
RESPONSES = {"model": "M", "temperature": 0.7, "input": "Summarise the benchmark."}
MESSAGES = {
    "model": "M",
    "max_tokens": 256,
    "temperature": 0.7,
    "messages": [{"role": "user", "content": "Summarise the benchmark."}],
}
# (label, path, body template, model)
SCENARIOS = [
    ("chat passthrough", "/v1/chat/completions", CHAT, "bench-chat"),
    ("responses passthrough", "/v1/responses", RESPONSES, "bench-native"),
    ("messages passthrough", "/v1/messages", MESSAGES, "bench-claude"),
    ("responses -> chat", "/v1/responses", RESPONSES, "bench-chat"),
    ("messages -> chat", "/v1/messages", MESSAGES, "bench-chat"),
]


def _config(up_port: int) -> Path:
    db = OUT / "endpoints.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    path = OUT / "bench-endpoints.yaml"
    path.write_text(
        f"server: {{host: {HOST}, port: 0}}\nledger: {{path: {db}}}\ncache: {{enabled: false}}\n"
        "providers:\n"
        f"  bench: {{kind: openai, base_url: 'http://{HOST}:{up_port}/v1', api_key_env: NMPROXY_BENCH_KEY}}\n"
        f"  claude: {{kind: anthropic, base_url: 'http://{HOST}:{up_port}', api_key_env: NMPROXY_BENCH_KEY}}\n"
        "models:\n"
        "  bench-chat: {provider: bench, price: {input: 0.15, output: 0.60}}\n"
        "  bench-native: {provider: bench, endpoints: [chat, responses], price: {input: 0.15, output: 0.60}}\n"
        "  bench-claude: {provider: claude, price: {input: 3, output: 15}}\n"
    )
    return path


def _http(proxy_port: int, duration: float) -> list[dict]:
    out = []
    for label, path, template, model in SCENARIOS:
        for stream in (False, True):
            body = json.dumps({**template, "model": model, **({"stream": True} if stream else {})}).encode()
            for c in (1, 16):
                req = loadgen.build_request(HOST, proxy_port, path, body, None)
                res = asyncio.run(
                    loadgen.run(HOST, proxy_port, req, concurrency=c, duration=duration)
                ).summary()
                name = f"{label}{' stream' if stream else ''}"
                out.append({"scenario": name, "concurrency": c, **res})
                print(
                    f"  {name:<32} c={c:<3} {res['rps']:>7.0f} req/s  p50 {res['p50_ms']:.3f} ms  "
                    f"p99 {res['p99_ms']:.3f} ms  errors {res['errors']}",
                    flush=True,
                )
    return out


def _median_us(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def _micro(n: int) -> dict[str, float]:
    """CPU time (µs, median) of the translation alone, per request, on the benchmark's own answer."""
    import orjson
    from endpoints_upstream import (
        ANTHROPIC,
        RESP_JSON,
        RESP_SSE,
        RESPONSE,
        _messages_events,
        _responses_events,
    )

    from nextmodel_proxy.endpoints import (
        messages_reply,
        messages_request,
        responses_reply,
        responses_request,
        responses_stream,
        wire,
    )
    from nextmodel_proxy.sse import SSESplitter

    chat_json = RESP_JSON[RESP_JSON.index(b"\r\n\r\n") + 4 :]
    chunked = RESP_SSE[RESP_SSE.index(b"\r\n\r\n") + 4 :]
    raw_events, rest = [], chunked
    while rest and not rest.startswith(b"0\r\n"):
        size_end = rest.index(b"\r\n")
        size = int(rest[:size_end], 16)
        raw_events.append(rest[size_end + 2 : size_end + 2 + size])
        rest = rest[size_end + 4 + size :]
    events = SSESplitter().feed(b"".join(raw_events))

    def responses_body() -> None:
        responses_request.to_chat_request(RESPONSES, "bench")
        responses_reply.from_completion_bytes(chat_json, RESPONSES)

    def responses_streamed() -> None:
        responses_request.to_chat_request({**RESPONSES, "stream": True}, "bench")
        t = responses_stream.ChatToResponsesStream(RESPONSES)
        for e in events:
            t.feed(e)

    def messages_body() -> None:
        messages_request.to_chat_request(MESSAGES, "bench")
        messages_reply.from_completion_bytes(chat_json, MESSAGES)

    def messages_stream() -> None:
        messages_request.to_chat_request({**MESSAGES, "stream": True}, "bench")
        t = messages_reply.ChatToMessagesStream(MESSAGES)
        for e in events:
            t.feed(e)

    def observed(endpoint: str, stream_events: list[bytes], body: bytes) -> None:
        tee = wire.tee_for(endpoint, collect=True)
        for e in stream_events:
            tee.observe(e)
        wire.storable_stream(endpoint, tee)
        wire.body_facts(endpoint, body)

    splitter = SSESplitter()
    resp_events = splitter.feed(b"".join(_responses_events()))
    msg_events = SSESplitter().feed(b"".join(_messages_events()))
    return {
        # what passthrough adds per request beyond relaying bytes: the tee over the stream + the body's usage
        "passthrough_chat_us": _median_us(lambda: observed("chat", events, chat_json), n),
        "passthrough_responses_us": _median_us(
            lambda: observed("responses", resp_events, orjson.dumps(RESPONSE)), n
        ),
        "passthrough_messages_us": _median_us(
            lambda: observed("messages", msg_events, orjson.dumps(ANTHROPIC)), n
        ),
        "responses_non_stream_us": _median_us(responses_body, n),
        "responses_stream_us": _median_us(responses_streamed, n),
        "messages_non_stream_us": _median_us(messages_body, n),
        "messages_stream_us": _median_us(messages_stream, n),
        "stream_events": len(events),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--n", type=int, default=5000, help="translations timed per micro figure")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    up_port = free_port()
    upstream = subprocess.Popen(
        pinned(1, [PY, str(ROOT / "bench" / "endpoints_upstream.py"), str(up_port)]), cwd=ROOT
    )
    results: list[dict] = []
    try:
        wait_ready(up_port, post=True)
        port = free_port()
        proxy = start(
            [
                PY,
                "-m",
                "nextmodel_proxy",
                "serve",
                "--config",
                str(_config(up_port)),
                "--port",
                str(port),
                "--log-level",
                "warning",
            ]
        )
        try:
            wait_ready(port)
            results = _http(port, args.duration)
        finally:
            stop(proxy)
    finally:
        stop(upstream)
    micro = _micro(args.n)
    print(
        f"  translation CPU per request (median of {args.n}): "
        + ", ".join(f"{k} {v:.1f}" for k, v in micro.items()),
        flush=True,
    )

    def p50(name: str, c: int) -> float:
        return next(r["p50_ms"] for r in results if r["scenario"] == name and r["concurrency"] == c)

    def rps(name: str, c: int) -> float:
        return next(r["rps"] for r in results if r["scenario"] == name and r["concurrency"] == c)

    derived = {
        "responses_passthrough_rps_vs_chat_c16": rps("responses passthrough", 16)
        / rps("chat passthrough", 16),
        "messages_passthrough_rps_vs_chat_c16": rps("messages passthrough", 16) / rps("chat passthrough", 16),
        "responses_passthrough_p50_added_ms_c1": p50("responses passthrough", 1) - p50("chat passthrough", 1),
        "messages_passthrough_p50_added_ms_c1": p50("messages passthrough", 1) - p50("chat passthrough", 1),
        "responses_translated_p50_added_ms_c1": p50("responses -> chat", 1) - p50("chat passthrough", 1),
        "messages_translated_p50_added_ms_c1": p50("messages -> chat", 1) - p50("chat passthrough", 1),
        "responses_translated_stream_p50_added_ms_c1": p50("responses -> chat stream", 1)
        - p50("chat passthrough stream", 1),
        "messages_translated_stream_p50_added_ms_c1": p50("messages -> chat stream", 1)
        - p50("chat passthrough stream", 1),
        "micro_us": micro,
    }
    (OUT / "endpoints.json").write_text(json.dumps({"results": results, "derived": derived}, indent=2))
    print(json.dumps(derived))


if __name__ == "__main__":
    main()
