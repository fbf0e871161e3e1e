"""Client matrix: the official OpenAI Node SDK (npm `openai`) drives the running proxy.

The SDK is installed from tests/node/package-lock.json into tests/node/node_modules by the first run (`npm ci`)
and reused while its version matches the lock. One Node process runs every scenario (tests/node/matrix.mjs);
the tests below judge what it printed. Skips only where `node` or `npm` is absent (CI installs both).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import openai
import pytest
from live_proxy import live_proxy_fixture

from nextmodel_proxy.estimate import estimate_tokens

NODE_DIR = Path(__file__).parent / "node"
INSTALL_TIMEOUT_S = 300
RUN_TIMEOUT_S = 120

live = live_proxy_fixture("node")


def _installed_version() -> str | None:
    manifest = NODE_DIR / "node_modules" / "openai" / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.exists() else None


def ensure_sdk() -> None:
    """`npm ci` from the lock unless node_modules already holds the locked SDK version."""
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    if _installed_version() == lock["packages"]["node_modules/openai"]["version"]:
        return
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    assert done.returncode == 0, f"npm ci failed in {NODE_DIR}:\n{done.stderr[-2000:]}"


@pytest.fixture(scope="module")
def node_results(live):
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed (apt-get install nodejs npm; CI installs them)")
    ensure_sdk()
    done = subprocess.run(
        ["node", "matrix.mjs", live.base], cwd=NODE_DIR, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def py(live):
    with openai.OpenAI(base_url=live.base, api_key="sk-py", max_retries=0, timeout=20) as client:
        yield client


def result(node_results, name):
    got = node_results[name]
    assert "error" not in got, got["error"]
    return got


def test_chat(node_results):
    got = result(node_results, "chat")
    assert "weather in Paris" in got["content"] and got["finish"] == "stop"
    assert got["usage"]["completion_tokens"] == estimate_tokens(got["content"])


def test_stream_matches_the_plain_answer(node_results):
    got = result(node_results, "stream")
    assert got["content"] == result(node_results, "chat")["content"]
    assert got["finish"] == "stop" and got["chunks"] > 3
    assert got["usage"] == result(node_results, "chat")["usage"]


def test_tools_round_trip_ends_with_a_final_answer(node_results):
    got = result(node_results, "tools")
    assert got["finish"] == "tool_calls" and got["name"] == "get_weather"
    assert got["args"]["city"] == "Paris" and got["args"]["unit"] in ("celsius", "fahrenheit")
    assert got["final_finish"] == "stop" and "18C and sunny" in got["final"]


def test_stream_helper_assembles_the_tool_call(node_results):
    got = result(node_results, "streamTools")
    assert (got["name"], got["finish"]) == ("get_weather", "tool_calls")
    jsonschema.validate(
        got["args"],
        {"required": ["city", "unit"], "additionalProperties": False, "properties": {"city": {}, "unit": {}}},
    )


def test_default_base64_embeddings_decode_to_the_real_vectors(node_results, py):
    got = result(node_results, "embeddings")
    assert got["wire_type"] == "string"  # the SDK asked for base64 and the proxy sent base64
    assert [len(v) for v in got["default"]] == [64, 64]
    assert got["default"] == got["float"]
    expected = py.embeddings.create(model="demo-embed", input=["red apples", "tax law"], dimensions=64)
    assert got["default"] == [d.embedding for d in expected.data]
    assert got["default"][0] != got["default"][1]


def test_chat_through_to_an_openai_upstream(node_results):
    got = result(node_results, "upstreamChat")
    assert got["content"] and got["usage"]["total_tokens"] > 0
