"""A bounded fuzz of the HTTP surface: raw requests with arbitrary header bytes, bodies and encodings sent to a
real `nmproxy serve` on loopback (demo provider, so no network); no answer may be a 5xx, and afterwards
/healthz is 200 and the ledger's hash chain verifies.

Bounded: FUZZ_EXAMPLES examples (default 150, env NMPROXY_FUZZ_EXAMPLES for longer local runs), derandomized
so CI is reproducible, each request with a 10 s socket timeout.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from conftest import free_port
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

NMPROXY = str(Path(sys.executable).with_name("nmproxy"))
FUZZ_EXAMPLES = int(os.environ.get("NMPROXY_FUZZ_EXAMPLES", "150"))
CONFIG = """
server: {{host: 127.0.0.1, port: {port}, header_timeout_s: 5, body_timeout_s: 5}}
ledger: {{path: {db}}}
providers:
  demo: {{kind: demo}}
models:
  demo-chat: {{provider: demo, price: {{input: 0.10, output: 0.40}}}}
  demo-embed: {{provider: demo, mode: embedding, price: {{input: 0.02, output: 0}}}}
routes:
  both: {{strategy: fallback, candidates: [demo-chat]}}
"""
SEEN: dict[str, int] = {"requests": 0, "5xx": 0}

HEADER_NAMES = [
    b"Authorization",
    b"x-request-id",
    b"x-client-request-id",
    b"x-nextmodel-project",
    b"x-nextmodel-team",
    b"x-nextmodel-environment",
    b"x-nextmodel-tags",
    b"x-nextmodel-cache",
    b"Content-Type",
    b"Accept-Encoding",
    b"Connection",
    b"Expect",
    b"X-Anything",
    b"anthropic-beta",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    folder = tmp_path_factory.mktemp("fuzz")
    port, db = free_port(), folder / "ledger.db"
    config = folder / "providers.yaml"
    config.write_text(CONFIG.format(port=port, db=db))
    log = (folder / "serve.log").open("wb")  # a file, not a pipe nobody reads (a full pipe would block it)
    proc = subprocess.Popen(
        [NMPROXY, "serve", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=log
    )
    try:
        for _ in range(300):  # bounded: 15 s to start
            if proc.poll() is not None:
                raise AssertionError((folder / "serve.log").read_text())
            try:
                if exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        yield port, db
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        text = (folder / "serve.log").read_text()
        assert "Traceback" not in text, text[-3000:]  # client mistakes are one line each, never a traceback


def exchange(port: int, request: bytes) -> tuple[int, bytes]:
    """Send one raw request, read to EOF; (final status, whole answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    answer = b"".join(chunks)
    status = 0
    rest = answer
    while rest.startswith(b"HTTP/"):
        line, _, rest = rest.partition(b"\r\n")
        status = int(line.split(b" ")[1])
        if status >= 200:
            break
        rest = rest.partition(b"\r\n\r\n")[2]  # skip a 100 Continue
    return status, answer


def _dumps(value: object) -> bytes:
    """JSON that orjson would refuse to write (integers past 64 bits) is still JSON a client may send."""
    return json.dumps(value, ensure_ascii=False).encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "assistant", "tool", "bogus"]), "content": json_values}
    ),
    max_size=3,
)
chat_bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(["demo-chat", "demo-embed", "both", "nope", ""]), "messages": messages},
    optional={
        "stream": st.booleans() | json_values,
        "stream_options": json_values,
        "max_tokens": st.integers(-5, 10**12) | json_values,
        "temperature": json_values,
        "tools": json_values,
        "n": st.integers(-1, 3),
    },
)
embed_bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(["demo-embed", "demo-chat", "nope"]), "input": json_values}
)
bodies = st.one_of(
    chat_bodies.map(_dumps),
    embed_bodies.map(_dumps),
    json_values.map(_dumps),
    st.binary(max_size=300),
)
header_values = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
headers = st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_values), max_size=6)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from([b"POST", b"POST", b"POST", b"GET", b"PUT"]))
    path = draw(
        st.sampled_from(
            [b"/v1/chat/completions", b"/v1/chat/completions", b"/v1/embeddings", b"/v1/models", b"/healthz"]
            + [b"/v1/receipts", b"/v1/receipts/rcpt_x", b"/v1/nowhere"]
        )
    )
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]))
    body = draw(bodies)
    encoding = draw(
        st.sampled_from([None, None, b"gzip", b"deflate", b"gzip-lie", b"deflate-lie", b"br-lie"])
    )
    extra = []
    if encoding == b"gzip":
        body = gzip.compress(body)
    elif encoding == b"deflate":
        body = zlib.compress(body)
    if encoding:
        extra.append((b"Content-Encoding", encoding.removesuffix(b"-lie")))
    chunked = draw(st.booleans()) and version == b"HTTP/1.1"
    lines = [method + b" " + path + b" " + version, b"Host: 127.0.0.1"]
    lines += [name + b": " + value for name, value in [*draw(headers), *extra]]
    lines.append(b"Connection: close")
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
        payload = (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    else:
        lines.append(b"Content-Length: %d" % len(body))
        payload = body
    return b"\r\n".join(lines) + b"\r\n\r\n" + payload


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(
        Phase.explicit,
        Phase.generate,
    ),  # no shrinking: bounded time in CI; the failing request is printed
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
def test_no_request_gets_a_5xx(served: tuple[int, Path], request: bytes) -> None:
    port, _db = served
    status, answer = exchange(port, request)
    SEEN["requests"] += 1
    if status >= 500 or status == 0:
        SEEN["5xx"] += 1
    assert 0 < status < 500, (request[:400], answer[:400])


def test_after_the_fuzz_the_proxy_is_healthy_and_the_ledger_verifies(served: tuple[int, Path]) -> None:
    port, db = served
    status, answer = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200, answer
    health = orjson.loads(answer.partition(b"\r\n\r\n")[2])
    assert health["status"] == "ok" and health["ledger"] == "ok"
    verify = subprocess.run(
        [NMPROXY, "receipts", "verify", "--db", str(db)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    print(f"fuzz: {SEEN['requests']} requests, {SEEN['5xx']} 5xx")
