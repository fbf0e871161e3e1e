"""RequestState on its own: its parts, what the upstream is sent, outcomes, headers, and the receipt from it."""

from __future__ import annotations

from nextmodel_proxy.accounting import build_receipt, usage_of
from nextmodel_proxy.cache.key import CacheDecision
from nextmodel_proxy.cache.plan import CachePlan
from nextmodel_proxy.config import load_yaml_text, parse_config
from nextmodel_proxy.request_state import Caller, RequestState
from nextmodel_proxy.tee import StreamTee
from nextmodel_proxy.upstream.base import Target

CONFIG = parse_config(
    load_yaml_text(
        """
providers:
  p: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
  q: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
models:
  a: {provider: p, price: {input: 1, output: 4}}
  b: {provider: q, price: {input: 2, output: 8}}
"""
    )
)
A = Target(CONFIG.providers["p"], CONFIG.models["a"])
B = Target(CONFIG.providers["q"], CONFIG.models["b"])


def state(body: dict | None = None, endpoint: str = "chat") -> RequestState:
    body = body or {"model": "a", "messages": [{"role": "user", "content": "hello"}]}
    return RequestState(
        endpoint=endpoint, body=body, caller=Caller(client_headers={}), receipt_url_base="http://h"
    )


def test_a_stream_always_asks_upstream_for_usage_without_changing_the_client_body():
    s = state({"model": "a", "stream": True, "messages": [], "stream_options": {"x": 1}})
    assert s.stream and not s.client_wants_usage
    assert s.upstream_body()["stream_options"] == {"x": 1, "include_usage": True}
    assert s.body["stream_options"] == {"x": 1}
    plain = state()
    assert plain.upstream_body() is plain.body and not plain.stream


def test_fail_keeps_a_replay_a_replay():
    s = state()
    s.fail(502, "upstream_error")
    assert (s.outcome.status, s.outcome.error_code, s.outcome.served_mode) == (502, "upstream_error", "error")
    replay = state()
    replay.served_from({"prompt_tokens": 1, "completion_tokens": 1}, "rcpt_x", "hit")
    replay.fail(499, "client_closed")
    assert replay.outcome.served_mode == "exact-cache" and replay.outcome.reused_receipt_id == "rcpt_x"


def test_only_the_first_candidates_answer_may_be_stored():
    s = state()
    s.decision.first = s.decision.target = A
    assert not s.decision.stores_answer  # no cache plan
    s.decision.cache_plan = CachePlan(CacheDecision(True, True, "normal", None), "k", b"c", "project")
    assert s.decision.stores_answer and s.decision.cache_key == "k"
    s.decision.target = B  # a fallback answered: not this key's answer
    assert not s.decision.stores_answer


def test_headers_name_the_answering_provider_and_final_ones_the_cost():
    s = state()
    assert "x-nextmodel-provider" not in s.headers()
    s.decision.target = B
    s.outcome.status = 200
    s.set_usage({"prompt_tokens": 1000, "completion_tokens": 500})
    s.finish()
    s.receipt = build_receipt(s, CONFIG)
    headers = s.headers(final=True)
    assert headers["x-nextmodel-provider"] == "q"
    assert headers["x-nextmodel-receipt-url"] == f"http://h/v1/receipts/{s.receipt_id}"
    # 1000 x $2/1M + 500 x $8/1M = $0.006
    assert headers["x-nextmodel-cost-usd"] == "0.006" and headers["x-nextmodel-usage-source"] == "upstream"


def test_building_a_receipt_changes_nothing_on_the_state():
    s = state()
    s.decision.target = A
    s.outcome.status = 200
    s.set_usage(None, estimated_from={"choices": [{"message": {"content": "x" * 10}}]})
    before = (s.outcome.usage, s.outcome.usage_source, s.outcome.completion_chars)
    usage, source, _ = usage_of(s)
    assert source == "estimated" and usage.completion_tokens == 3  # ceil(10 / 4)
    s.finish()
    receipt = build_receipt(s, CONFIG)
    assert receipt.usage_source == "estimated"
    assert (s.outcome.usage, s.outcome.usage_source, s.outcome.completion_chars) == before


def test_a_cut_stream_is_recorded_as_incomplete():
    s = state({"model": "a", "stream": True, "messages": []})
    s.outcome.status = 200
    tee = StreamTee(collect=True)
    tee.observe(b'data: {"id":"r1","choices":[{"index":0,"delta":{"content":"abcd"}}]}\n\n')
    s.finish_stream(tee)
    assert s.outcome.error_code == "stream_incomplete" and s.outcome.response_id == "r1"
    assert s.outcome.completion_chars == 4 and s.outcome.latency_ms is not None
