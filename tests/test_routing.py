"""Routes and model names -> ordered targets: strategies, filters, retirement, budget switch."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from decimal import Decimal

import pytest

from nextmodel_proxy.config import load_yaml_text, parse_config
from nextmodel_proxy.errors import ProxyError
from nextmodel_proxy.routing import detect_requirements, estimate_request_cost, plan

TODAY = dt.date(2026, 11, 22)

CONFIG = """
providers:
  g: {kind: openai, base_url: https://g.example/v1, tags: [global]}
  d: {kind: openai, base_url: https://d.example/v1, tags: [domestic]}
  demo: {kind: demo}
models:
  big: {provider: g, price: {input: 3, output: 15}, capabilities: [tools, vision, json_schema],
        latency: {ttft_ms: 1200}, max_output: 64000}
  # cheap on input, dear on output: wins long prompts, loses long answers
  longread: {provider: g, price: {input: 0.1, output: 8}, capabilities: [tools], latency: {ttft_ms: 800}}
  # dear on input, cheap on output: wins short prompts with long answers
  chatty: {provider: d, price: {input: 2, output: 0.5}, capabilities: [tools, vision], latency: {ttft_ms: 400}}
  noest: {provider: d, price: {input: 1, output: 1}}
  old: {provider: g, price: {input: 3, output: 15}, capabilities: [tools, vision, json_schema],
        retires: 2026-11-01, replacement: big}
  emb: {provider: g, mode: embedding, price: {input: 0.02, output: 0}}
  unpriced: {provider: d, capabilities: [tools]}
routes:
  smart: {strategy: fallback, candidates: [old, big, longread, chatty]}
  cheap: {strategy: cheapest, candidates: [big, longread, chatty, unpriced]}
  fast: {strategy: fastest, candidates: [big, longread, chatty, noest]}
  spread: {strategy: weighted, candidates: [{model: big, weight: 3}, {model: chatty, weight: 1},
                                            {model: longread, weight: 0}]}
  toolsy: {strategy: fallback, candidates: [noest, big, chatty], require: [tools]}
  global: {strategy: fallback, candidates: [chatty, longread, big], tags: [global]}
  capped: {strategy: fallback, candidates: [big, unpriced, longread, chatty], max_price: {output: 10}}
  only_old: {strategy: fallback, candidates: [old]}
  frugal: {strategy: cheapest, candidates: [longread, chatty]}
projects:
  thrifty: {budget: {amount: 10, switch_route: cheap, switch_at: 0.75}}
"""


@pytest.fixture(scope="module")
def config():
    return parse_config(load_yaml_text(CONFIG))


def chat(text: str = "hi", **extra):
    return {"model": "x", "messages": [{"role": "user", "content": text}], **extra}


def ids(result) -> list[str]:
    return [t.model.id for t in result.candidates]


# --- requirements and estimates -----------------------------------------------------------------


def test_detects_tools_images_and_json_schema_from_the_request():
    assert detect_requirements(chat()) == frozenset()
    assert detect_requirements(chat(tools=[])) == frozenset()  # empty list asks for nothing
    assert detect_requirements(chat(tools=[{"type": "function", "function": {"name": "f"}}])) == {"tools"}
    image = {
        "role": "user",
        "content": [
            {"type": "text", "text": "what?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
        ],
    }
    assert detect_requirements({"messages": [image]}) == {"vision"}
    assert detect_requirements(chat(response_format={"type": "json_schema", "json_schema": {}})) == {
        "json_schema"
    }
    assert detect_requirements(chat(response_format={"type": "json_object"})) == frozenset()


def test_estimated_cost_uses_chars_over_four_and_requested_max_tokens(config):
    big = config.models["big"]
    body = chat("x" * 4000, max_tokens=100)  # ~1000 prompt tokens (+ role/content keys' text)
    cost = estimate_request_cost(big, body)
    prompt_tokens = 1001  # ceil((4000 + len("user")) / 4): message text, role included
    assert cost == (Decimal(prompt_tokens) * 3 + Decimal(100) * 15) / Decimal(1_000_000)
    assert estimate_request_cost(big, chat("x", max_completion_tokens=10)) < estimate_request_cost(
        big, chat("x")
    )
    assert estimate_request_cost(config.models["unpriced"], body) is None


def test_estimated_cost_defaults_output_to_model_max_capped_at_4096(config):
    noest = config.models["noest"]  # no max_output: 4096 assumed
    assert estimate_request_cost(noest, {"messages": []}) == Decimal(4096) / Decimal(1_000_000)


# --- plain models, unknown names, retirement ----------------------------------------------------


def test_plain_model_is_one_candidate(config):
    result = plan(config, "big", chat(), today=TODAY)
    assert ids(result) == ["big"] and result.route is None
    assert result.candidates[0].provider.name == "g"
    assert "model big" in result.decision


def test_unknown_name_is_404_with_close_suggestions(config):
    with pytest.raises(ProxyError) as err:
        plan(config, "smrt", chat(), today=TODAY)
    assert err.value.status == 404 and err.value.code == "model_not_found"
    assert "'smart'" in err.value.message


def test_retired_plain_model_is_410(config):
    with pytest.raises(ProxyError) as err:
        plan(config, "old", chat(), today=TODAY)
    assert err.value.status == 410 and "'big'" in err.value.message


def test_embedding_model_on_chat_endpoint_is_400(config):
    with pytest.raises(ProxyError) as err:
        plan(config, "emb", chat(), today=TODAY)
    assert err.value.status == 400 and "/v1/embeddings" in err.value.message
    assert ids(plan(config, "emb", {"input": "x"}, today=TODAY, endpoint="embeddings")) == ["emb"]


# --- strategies ---------------------------------------------------------------------------------


def test_fallback_keeps_listed_order_and_skips_retired(config):
    result = plan(config, "smart", chat(), today=TODAY)
    assert ids(result) == ["big", "longread", "chatty"] and result.route == "smart"
    assert "old (retired 2026-11-01)" in result.decision and "chose big" in result.decision
    # before its retirement date the same model leads
    assert ids(plan(config, "smart", chat(), today=dt.date(2026, 10, 31)))[0] == "old"


def test_cheapest_picks_by_this_requests_size(config):
    long_prompt = chat("x" * 400_000, max_tokens=10)  # ~100K prompt tokens, tiny answer
    assert ids(plan(config, "cheap", long_prompt, today=TODAY))[0] == "longread"
    long_answer = chat("hi", max_tokens=8000)
    result = plan(config, "cheap", long_answer, today=TODAY)
    assert ids(result)[0] == "chatty"
    assert ids(result)[-1] == "unpriced"  # unknown cost goes last, not first
    assert "estimated cost" in result.decision


def test_fastest_prefers_observed_latency_then_the_estimate(config):
    result = plan(config, "fast", chat(), today=TODAY)
    assert ids(result) == ["chatty", "longread", "big", "noest"]  # estimates; no estimate last
    observed = plan(config, "fast", chat(), today=TODAY, latency_stats={"big": 150.0, "chatty": 900.0})
    assert ids(observed) == ["big", "longread", "chatty", "noest"]
    assert "big 150ms (observed)" in observed.decision and "longread 800ms (estimate)" in observed.decision


def test_weighted_follows_weights_with_a_seeded_rng(config):
    rng = random.Random(1234)
    firsts = Counter(ids(plan(config, "spread", chat(), today=TODAY, rng=rng))[0] for _ in range(2000))
    assert firsts["longread"] == 0  # weight 0 is never first
    share = firsts["big"] / 2000
    assert 0.70 <= share <= 0.80  # expected 3/4
    every = plan(config, "spread", chat(), today=TODAY, rng=random.Random(7))
    assert sorted(ids(every)) == ["big", "chatty", "longread"] and ids(every)[-1] == "longread"


def test_weighted_is_reproducible_for_the_same_seed(config):
    a = [ids(plan(config, "spread", chat(), today=TODAY, rng=random.Random(s))) for s in range(20)]
    b = [ids(plan(config, "spread", chat(), today=TODAY, rng=random.Random(s))) for s in range(20)]
    assert a == b


# --- filters --------------------------------------------------------------------------------------


def test_route_require_filters_candidates(config):
    result = plan(config, "toolsy", chat(), today=TODAY)
    assert ids(result) == ["big", "chatty"] and "noest (lacks tools)" in result.decision


def test_capabilities_detected_from_the_request_filter_candidates(config):
    image = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}]}
    assert ids(plan(config, "smart", image, today=TODAY)) == ["big", "chatty"]
    schema = chat(response_format={"type": "json_schema", "json_schema": {"name": "x"}})
    result = plan(config, "smart", schema, today=TODAY)
    assert ids(result) == ["big"] and result.requirements == {"json_schema"}


def test_tag_filter_keeps_only_matching_sources(config):
    result = plan(config, "global", chat(), today=TODAY)
    assert ids(result) == ["longread", "big"]
    assert "chatty (tags domestic not in global)" in result.decision


def test_max_price_filter_drops_dear_and_unpriced_models(config):
    result = plan(config, "capped", chat(), today=TODAY)
    assert ids(result) == ["longread", "chatty"]
    assert "big (output $15/1M over max $10)" in result.decision
    assert "unpriced (no output price" in result.decision


def test_filters_leaving_nothing_explain_what_removed_each_candidate(config):
    with pytest.raises(ProxyError) as err:
        plan(config, "only_old", chat(), today=TODAY)
    assert err.value.status == 400 and err.value.code == "no_eligible_model"
    assert "old (retired 2026-11-01)" in err.value.message
    demanding = chat(tools=[{"type": "function"}], response_format={"type": "json_schema"})
    demanding["messages"] = [{"role": "user", "content": [{"type": "input_image", "image_url": "u"}]}]
    with pytest.raises(ProxyError) as err:
        plan(config, "capped", demanding, today=TODAY)
    message = err.value.message
    assert (
        "route capped (fallback): no candidate can serve this request needing json_schema, tools, vision"
        in message
    )
    assert "big (output $15/1M over max $10)" in message
    assert "longread (lacks json_schema, vision)" in message and "chatty (lacks json_schema)" in message


# --- budget-aware switch --------------------------------------------------------------------------


def test_project_switches_to_its_cheaper_route_once_the_budget_share_is_reached(config):
    below = plan(config, "smart", chat(), today=TODAY, project="thrifty", budget_share=Decimal("0.74"))
    assert below.route == "smart" and below.switched_from is None
    above = plan(config, "smart", chat(), today=TODAY, project="thrifty", budget_share=Decimal("0.75"))
    assert above.route == "cheap" and above.switched_from == "smart"
    assert above.decision.startswith("budget 0.75 spent, switched smart -> cheap; route cheap (cheapest)")


def test_budget_switch_applies_to_plain_models_but_not_embeddings(config):
    switched = plan(config, "big", chat(), today=TODAY, project="thrifty", budget_share=Decimal("0.9"))
    assert switched.route == "cheap" and switched.switched_from == "big"
    emb = plan(
        config,
        "emb",
        {"input": "x"},
        today=TODAY,
        endpoint="embeddings",
        project="thrifty",
        budget_share=Decimal("0.9"),
    )
    assert ids(emb) == ["emb"] and emb.switched_from is None


def test_explicit_switch_route_without_project_uses_default_threshold(config):
    assert (
        plan(config, "big", chat(), today=TODAY, budget_share=Decimal("0.79"), switch_route="fast").route
        is None
    )
    assert (
        plan(config, "big", chat(), today=TODAY, budget_share=Decimal("0.8"), switch_route="fast").route
        == "fast"
    )


def test_budget_switch_keeps_the_original_when_the_cheap_route_cannot_serve_the_request(config):
    needs_schema = chat(response_format={"type": "json_schema", "json_schema": {"name": "x"}})
    result = plan(
        config,
        "smart",
        needs_schema,
        today=TODAY,
        project="thrifty",
        budget_share=Decimal("0.9"),
        switch_route="frugal",
    )
    assert result.route == "smart" and ids(result) == ["big"] and result.switched_from is None
    assert "frugal cannot serve this request (no_eligible_model); kept smart" in result.decision
    assert (
        plan(
            config,
            "smart",
            chat(),
            today=TODAY,
            project="thrifty",
            budget_share=Decimal("0.9"),
            switch_route="frugal",
        ).route
        == "frugal"
    )


def test_no_switch_without_a_budget_share(config):
    assert plan(config, "smart", chat(), today=TODAY, project="thrifty").route == "smart"


def test_shipped_routes_plan_on_the_shipped_catalog():
    from pathlib import Path

    from nextmodel_proxy.config import load_config

    shipped = load_config(Path(__file__).resolve().parent.parent / "providers.yaml")
    tools = chat(tools=[{"type": "function", "function": {"name": "f"}}])
    assert plan(shipped, "smart", tools, today=TODAY).candidates
    cheap = plan(shipped, "cheap", chat(max_tokens=500), today=TODAY)
    assert cheap.candidates[0].model.id.startswith("doubao-seed-2-0-mini")
    cn = plan(shipped, "cn", chat(), today=TODAY, rng=random.Random(0))
    assert {t.provider.name for t in cn.candidates} <= {"deepseek", "qwen", "doubao"}
