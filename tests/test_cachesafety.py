"""CacheSafety Bench offline: the shipped trap data, each strategy's failures per family, the dataset contract."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from nextmodel_proxy.cache.key import cache_key, canonical_request
from nextmodel_proxy.cachesafety import dataset, metrics, strategies
from nextmodel_proxy.cli.main import main as nmproxy
from nextmodel_proxy.config import load_config

ROOT = Path(__file__).resolve().parent.parent
TRAP_FAMILIES = {
    "negation", "numbers", "dates", "units", "entity-swap", "word-order", "system-prompt", "tools",
    "tool-choice", "model", "temperature", "seed", "max-tokens", "response-format", "history", "language",
}  # fmt: skip
SAFE_FAMILIES = {
    "exact-repeat",
    "whitespace-case",
    "key-order",
    "answer-neutral-fields",
    "history-irrelevant",
}


@pytest.fixture(scope="module")
def shipped() -> list[dataset.Pair]:
    pairs, problems = dataset.load([dataset.shipped_path()])
    assert problems == []
    return pairs


@pytest.fixture(scope="module")
def scored(shipped: list[dataset.Pair]) -> dict[str, Any]:
    config = load_config(ROOT / "providers.yaml")
    result = metrics.score(strategies.build(config, (0.7, 0.8, 0.9), ()), shipped, config)
    return {s["name"]: s for s in result["strategies"]} | {"_all": result}


def run(*args: str) -> Any:
    return CliRunner().invoke(nmproxy, ["bench", "cachesafety", *args])


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else orjson.dumps(x) for x in lines) + b"\n")
    return path


# --- the shipped data -----------------------------------------------------------------------------------


def test_shipped_data_is_big_labelled_real_chat_bodies(shipped):
    assert len(shipped) >= 1500
    families = Counter(p.family for p in shipped)
    assert set(families) == TRAP_FAMILIES | SAFE_FAMILIES
    for p in shipped:
        assert p.same_answer is (p.family in SAFE_FAMILIES)
        assert p.a["messages"][0]["role"] == "system"
    assert sum(1 for p in shipped if "tools" in p.a) > 200
    assert sum(1 for p in shipped if len(p.a["messages"]) > 3) > 200  # multi-turn histories
    assert len({p.id for p in shipped}) == len(shipped)


def test_shipped_data_is_rebuilt_byte_for_byte_by_its_generator(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("builder", ROOT / "bench" / "build_cachesafety_data.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    rebuilt = b"".join(orjson.dumps(r) + b"\n" for r in builder.build())
    assert rebuilt == dataset.shipped_path().read_bytes()


def test_exact_uses_the_proxys_own_key():
    config = load_config(ROOT / "providers.yaml")
    body = {"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    model = config.models["demo-chat"]
    expected = cache_key(
        canonical_request(
            body, scope="project:", provider=model.provider, upstream_model=model.upstream_id, endpoint="chat"
        )
    )
    assert strategies.exact_key_fn(config)(body) == expected
    sampled = {**body, "temperature": 0.7}  # the proxy would not cache it: no key, never a hit
    assert strategies.exact_key_fn(config)(sampled) is None


# --- scores per family ------------------------------------------------------------------------------------


def fails(scored, name: str) -> dict[str, int]:
    return {f: v["bad_hits"] for f, v in scored[name]["families"].items() if v["bad_hits"]}


def test_exact_has_zero_bad_hits_and_reuses_the_answer_neutral_changes(scored):
    exact = scored["exact"]
    assert exact["bad_hits"] == 0 and exact["bad_hit_rate"] == 0.0 and exact["precision"] == 1.0
    fam = exact["families"]
    for family in ("exact-repeat", "key-order", "answer-neutral-fields"):
        assert fam[family]["hits"] == fam[family]["pairs"]
    assert exact["safe_hits"] == 240
    assert exact["tokens_saved"] > 0 and exact["usd_saved"] == exact["usd_saved_safe"] != "0.00"


def test_exact_body_misses_key_order_and_neutral_fields_but_never_serves_a_trap(scored):
    body = scored["exact-body"]
    assert body["bad_hits"] == 0
    assert body["families"]["key-order"]["hits"] == 0
    assert body["families"]["answer-neutral-fields"]["hits"] == 0
    assert body["families"]["exact-repeat"]["hits"] == 80


def test_normalized_fails_on_numbers_and_dates_where_punctuation_carries_meaning(scored):
    failed = fails(scored, "normalized")
    assert set(failed) >= {"numbers", "dates"}
    assert set(failed) <= {"numbers", "dates", "history"}  # history: `a - b` vs `a + b`
    assert scored["normalized"]["families"]["whitespace-case"]["hits"] == 80


def test_last_message_fails_every_trap_outside_the_last_message(scored):
    failed = fails(scored, "last-message")
    for family in ("system-prompt", "tools", "tool-choice", "model", "temperature", "seed", "max-tokens",
                   "response-format", "history"):  # fmt: skip
        assert failed[family] == 80, family
    for family in ("negation", "numbers", "entity-swap", "language"):
        assert family not in failed


def test_lexical_fails_text_traps_and_more_so_at_lower_thresholds(scored):
    for t in ("0.7", "0.8", "0.9"):
        failed = fails(scored, f"lexical@{t}")
        for family in ("negation", "numbers", "dates", "units", "entity-swap", "word-order", "tools"):
            assert failed.get(family, 0) > 0, (t, family)
    assert (
        scored["lexical@0.7"]["bad_hits"]
        > scored["lexical@0.8"]["bad_hits"]
        > scored["lexical@0.9"]["bad_hits"]
    )


def test_rates_follow_from_the_counts(scored):
    result = scored["_all"]
    for name in ("exact", "normalized", "lexical@0.8"):
        s = scored[name]
        assert s["hits"] == s["safe_hits"] + s["bad_hits"]
        assert s["bad_hit_rate_must_miss"] == round(s["bad_hits"] / result["must_miss"], 4)
        assert s["safe_hit_rate"] == round(s["safe_hits"] / result["pairs"], 4)


def test_saving_of_a_hit_is_the_fresh_price_minus_the_replay_price():
    config = load_config(ROOT / "providers.yaml")
    body = {"model": "demo-chat", "messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 50}
    tokens, usd = metrics.saving_of(body, config)
    prompt = 4 + 100 + 3  # one message: 4 overhead + 400 chars / 4, plus 3 reply priming
    assert tokens == prompt + 50
    fresh = (prompt * metrics.Decimal("0.10") + 50 * metrics.Decimal("0.40")) / 1_000_000
    assert usd == fresh - fresh * config.cache.replay_price_ratio


# --- the dataset contract and bad input --------------------------------------------------------------------


def test_string_requests_and_missing_models_are_filled(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [
        {"id": "1", "family": "negation", "same_answer": False, "a": "Is it on?", "b": "Is it not on?"},
        {"id": "2", "family": "exact-repeat", "same_answer": True, "a": "Hi", "b": "Hi"},
    ])  # fmt: skip
    result = run("--dataset", str(path), "--json")
    assert result.exit_code == 0, result.output
    out = orjson.loads(result.output)
    assert out["pairs"] == 2 and out["must_miss"] == 1
    by_name = {s["name"]: s for s in out["strategies"]}
    assert by_name["last-message"]["bad_hits"] == 0 and by_name["last-message"]["safe_hits"] == 1
    assert by_name["semantic@0.8"]["skipped"] == "no --embed-model given"


def test_bad_lines_are_named_with_their_number_and_skipped(tmp_path):
    good = {"id": "ok", "family": "f", "same_answer": True, "a": "x", "b": "x"}
    path = write_lines(tmp_path / "t.jsonl", [
        good,
        b"{not json",
        {"id": "m", "family": "f", "a": "x", "b": "x"},
        {"id": "c", "family": "f", "same_answer": True, "a": {"prompt": "x"}, "b": "x"},
        {"id": "s", "family": "f", "same_answer": "yes", "a": "x", "b": "x"},
        b"[1, 2]",
        {"id": "r", "family": "f", "same_answer": True, "a": "x", "b": {"messages": [{"role": "robot"}]}},
    ])  # fmt: skip
    result = run("--dataset", str(path))
    assert result.exit_code == 0, result.output
    err = result.stderr
    assert f"{path}:2: not JSON" in err
    assert f"{path}:3: missing field: same_answer" in err
    assert f'{path}:4: "a" has no "messages" list' in err
    assert f'{path}:5: "same_answer" must be true or false' in err
    assert f"{path}:6: a line must be a JSON object" in err
    assert f'{path}:7: "b" messages[0].role must be one of' in err
    assert "Traceback" not in result.output
    assert "1 pairs" in result.stdout


def test_no_valid_pair_exits_2_with_one_line(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [b"hello", b"{}"])
    result = run("--dataset", str(path))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: no valid pair in {path} (2 bad lines)"
    assert result.stdout == ""
    missing = run("--dataset", str(tmp_path / "absent.jsonl"))
    assert missing.exit_code == 2 and "cannot read" in missing.stderr


def test_datasets_are_repeatable(tmp_path):
    one = write_lines(
        tmp_path / "1.jsonl", [{"id": "1", "family": "f", "same_answer": True, "a": "x", "b": "x"}]
    )
    two = write_lines(
        tmp_path / "2.jsonl", [{"id": "2", "family": "g", "same_answer": False, "a": "x", "b": "y"}]
    )
    out = orjson.loads(run("--dataset", str(one), "--dataset", str(two), "--json").output)
    assert out["pairs"] == 2 and set(out["families"]) == {"f", "g"}


def test_an_erroring_embeddings_model_skips_semantic_and_the_rest_runs(tmp_path):
    path = write_lines(
        tmp_path / "t.jsonl", [{"id": "1", "family": "f", "same_answer": True, "a": "x", "b": "x"}]
    )
    result = run(
        "--config", str(ROOT / "providers.yaml"), "--dataset", str(path), "--embed-model", "nope", "--json"
    )
    assert result.exit_code == 0, result.output
    by_name = {s["name"]: s for s in orjson.loads(result.output)["strategies"]}
    assert "not a model in the config" in by_name["semantic@0.9"]["skipped"]
    assert by_name["exact-body"]["hits"] == 1  # (exact: a bare string samples, the proxy would not cache it)
    chat_as_embed = run(
        "--config",
        str(ROOT / "providers.yaml"),
        "--dataset",
        str(path),
        "--embed-model",
        "demo-chat",
        "--json",
    )
    skipped = {s["name"]: s for s in orjson.loads(chat_as_embed.output)["strategies"]}["semantic@0.9"][
        "skipped"
    ]
    assert skipped.startswith("embeddings model 'demo-chat' answered 4"), skipped


def test_semantic_through_the_proxy_hits_identical_prompts(tmp_path):
    pair = {"id": "1", "family": "exact-repeat", "same_answer": True, "a": "same", "b": "same"}
    other = {"id": "2", "family": "entity-swap", "same_answer": False, "a": "Austria", "b": "Australia"}
    path = write_lines(tmp_path / "t.jsonl", [pair, other])
    result = run("--config", str(ROOT / "providers.yaml"), "--dataset", str(path), "--embed-model", "demo-embed",
                 "--semantic-threshold", "0.99", "--json")  # fmt: skip
    sem = {s["name"]: s for s in orjson.loads(result.output)["strategies"]}["semantic@0.99"]
    assert sem["safe_hits"] == 1 and sem["bad_hits"] == 0


def test_report_is_one_self_contained_html_file(tmp_path):
    out = tmp_path / "r.html"
    result = run("--report", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.count("<svg") == 1 and 'class="bad"' in page and "negation" in page
    for remote in ("http://", "https://", "<script src", "<link"):
        assert remote not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_table_shows_every_strategy_and_family(shipped):
    result = run()
    assert result.exit_code == 0
    for name in ("exact", "exact-body", "normalized", "last-message", "lexical@0.7", "lexical@0.9"):
        assert f"\n{name} " in result.output
    assert "semantic@0.8: skipped: no --embed-model given" in result.output
    assert copy.deepcopy(shipped[0].a)  # the data is plain JSON


def test_ledger_lexical_index_finds_the_same_best_match_as_comparing_every_pair(shipped):
    from nextmodel_proxy.cachesafety.ledger_scan import Request, best_lexical

    bodies = [b for p in shipped[::7] for b in (p.a, p.b)]
    requests = []
    for i, body in enumerate(bodies):
        text = strategies.prompt_text(body)
        requests.append(Request(f"r{i}", f"k{i}", "project:", body, None, text, strategies.trigrams(text)))
    found = best_lexical(requests, 0.7)
    for i, req in enumerate(requests):
        brute = max((strategies.jaccard(req.shingles, o.shingles) for o in requests[:i]), default=0.0)
        score, other = found[i]
        if brute >= 0.7:
            assert other is not None and score == brute, i
        else:
            assert other is None, i
