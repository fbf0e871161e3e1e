"""`nmproxy compare` on a ledger written by real proxy traffic, every figure checked by hand."""

from __future__ import annotations

from typing import Any

import openai
import orjson
from click.testing import CliRunner

from nextmodel_proxy.cli.compare import compare_command

PROJECT = {"x-nextmodel-project": "cmp"}


async def send(client: openai.AsyncOpenAI, model: str, text: str, **kw: Any) -> str:
    raw = await client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], **kw
    )
    return raw.headers["x-nextmodel-served-mode"]


async def test_compare_reprices_proxy_traffic_exactly(write_config, start_proxy, tmp_path):
    config = write_config()
    server = await start_proxy(config)
    async with openai.AsyncOpenAI(
        base_url=server.base, api_key="sk-client", max_retries=0, timeout=20, default_headers=PROJECT
    ) as client:
        # The fake reports prompt 9 + chars // 4, completion 1 + len(answer) // 4, DeepSeek models 8 cached.
        # "hello there" -> prompt 11 (8 cached), answer "Echo: hello there" -> completion 5.
        assert await send(client, "fake-deepseek", "hello there", temperature=0) == "fresh"
        # The cache entry is queued on the ledger writer before the receipt we waited for: the repeat replays.
        assert await send(client, "fake-deepseek", "hello there", temperature=0) == "exact-cache"
        # "four score and seven" -> prompt 14, "Echo: four score and seven" -> completion 7; not cacheable.
        assert await send(client, "gpt-test", "four score and seven", temperature=0.7) == "fresh"
        try:
            await send(client, "fake-error-500", "not workload")
        except openai.InternalServerError:
            pass

    result = CliRunner().invoke(
        compare_command,
        [
            "--config",
            str(tmp_path / "providers.yaml"),
            "--db",
            config.ledger.path,
            "--project",
            "cmp",
            "--models",
            "fake-deepseek,r-in-cheap",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.output)
    assert data["requests"] == 3 and data["replayed"] == 1 and data["hit_rate"] == "0.3333"
    # Billed per 1M: deepseek fresh 3 x 0.28 + 8 x 0.028 + 5 x 0.42 = 3.164, its replay at 10% = 0.3164,
    # gpt-test 14 x 0.15 + 7 x 0.60 = 6.3; total 9.7804.
    assert data["billed_usd"] == "0.0000097804"
    by_model = {m["model"]: m for m in data["models"]}
    # fake-deepseek: fresh rows (prompt 25, 8 cached, completion 12) 17 x 0.28 + 8 x 0.028 + 12 x 0.42 = 10.024;
    # the replayed row 3.164, so 13.188 all fresh and 10.024 + 0.3164 = 10.3404 with the cache.
    assert by_model["fake-deepseek"]["all_fresh_usd"] == "0.000013188"
    assert by_model["fake-deepseek"]["with_cache_usd"] == "0.0000103404"
    # r-in-cheap ($0.1 in, $10 out, no cached price: input used): fresh 2.5 + 120 = 122.5, replay 1.1 + 50 = 51.1.
    assert by_model["r-in-cheap"]["all_fresh_usd"] == "0.0001736"
    assert by_model["r-in-cheap"]["with_cache_usd"] == "0.00012761"
    assert by_model["r-in-cheap"]["assumed_input_price_for"] == ["cached_input"]
    assert [m["model"] for m in data["models"]] == ["fake-deepseek", "r-in-cheap"]
