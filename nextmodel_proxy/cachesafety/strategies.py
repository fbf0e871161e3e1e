"""The caching strategies compared: each a small keying or matching rule over chat-completions bodies.

Key strategies hit when the new request's key equals the cached one's (None = never cached / never looked up):
- exact: the proxy's own key (cache/key.py canonical_request + cache_key, after cache/key.py decide()), with
  provider and upstream model resolved through the config like the proxy does;
- exact-body: the request bytes as sent (compact JSON in the client's key order), like gateways that hash bodies;
- normalized: every field but the excluded delivery fields, message text case-, whitespace- and
  punctuation-folded;
- last-message: the text of the last user message only.
Similarity strategies hit when a score between the two requests is >= T:
- lexical@T: Jaccard similarity of the word-trigram sets of the prompt text (all message text, in order);
- semantic@T: cosine similarity of the prompt texts' embeddings (semantic.py fetches them through the proxy).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson
import xxhash

from nextmodel_proxy.cache.key import EXCLUDED_FIELDS, cache_key, canonical_request, decide
from nextmodel_proxy.config import CacheConfig, Config

EXACT_SCOPE = "project:"  # one tenant: a pair's two requests come from the same caller
_WORD = re.compile(r"\w+")
_PUNCT = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")

KeyFn = Callable[[Mapping[str, Any]], Hashable | None]


def text_of(content: Any) -> str:
    """A message's text: the string, or its text parts joined (images and audio carry no text)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return ""


def prompt_text(body: Mapping[str, Any]) -> str:
    """All message text in order, one message a line (what lexical and semantic strategies compare)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    return "\n".join(text_of(m.get("content")) for m in messages if isinstance(m, Mapping))


def last_user_text(body: Mapping[str, Any]) -> str | None:
    messages = body.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return text_of(message.get("content"))
    return None


def fold(text: str) -> str:
    """Case, punctuation and whitespace folded: 'Is 3.5 > 35?' -> 'is 35 35'."""
    return _SPACE.sub(" ", _PUNCT.sub("", text.casefold())).strip()


def trigrams(text: str) -> frozenset[tuple[str, ...]]:
    """Word trigrams of the lower-cased text; a text of fewer than three words is one shingle of its words."""
    words = _WORD.findall(text.lower())
    if len(words) < 3:
        return frozenset({tuple(words)})
    return frozenset(zip(words, words[1:], words[2:], strict=False))


def jaccard(x: frozenset[Any], y: frozenset[Any]) -> float:
    if not x and not y:
        return 1.0
    inter = len(x & y)
    return inter / (len(x) + len(y) - inter)


# --- key strategies ----------------------------------------------------------------------------------


def exact_key_fn(config: Config | None) -> KeyFn:
    """The proxy's canonical key of a body, or None when the proxy would not read/write the cache for it."""
    # The bench measures the key and the policy even where the user has the cache switched off.
    cache_cfg = replace(config.cache if config is not None else CacheConfig(), enabled=True)
    models = config.models if config is not None else {}

    def key(body: Mapping[str, Any]) -> str | None:
        name = body.get("model")
        model = models.get(name) if isinstance(name, str) else None
        decision = decide(body, None, cache_cfg, model.cache_policy if model else None, endpoint="chat")
        if not (decision.read and decision.write):
            return None
        provider, upstream = (model.provider, model.upstream_id) if model else ("unresolved", str(name))
        canonical = canonical_request(
            body, scope=EXACT_SCOPE, provider=provider, upstream_model=upstream, endpoint="chat"
        )
        return cache_key(canonical)

    return key


def exact_body_key(body: Mapping[str, Any]) -> str:
    return xxhash.xxh3_128_hexdigest(orjson.dumps(body))


def _folded_message(message: Any) -> Any:
    if not isinstance(message, Mapping):
        return message
    content = message.get("content")
    if isinstance(content, str | list):
        return {**message, "content": fold(text_of(content))}
    return message


def normalized_key(body: Mapping[str, Any]) -> str:
    rest = {k: v for k, v in body.items() if k not in EXCLUDED_FIELDS or k == "model"}
    messages = body.get("messages")
    if isinstance(messages, list):
        rest["messages"] = [_folded_message(m) for m in messages]
    return xxhash.xxh3_128_hexdigest(orjson.dumps(rest, option=orjson.OPT_SORT_KEYS))


def last_message_key(body: Mapping[str, Any]) -> str | None:
    return last_user_text(body)


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str
    kind: str  # 'key' | 'lexical' | 'semantic'
    description: str
    key: KeyFn | None = None
    threshold: float | None = None


def build(config: Config | None, lexical: tuple[float, ...], semantic: tuple[float, ...]) -> list[Strategy]:
    """The strategies in report order."""
    out = [
        Strategy(
            "exact",
            "key",
            "the proxy's canonical cache key (model, messages, tools, parameters, scope)",
            exact_key_fn(config),
        ),
        Strategy("exact-body", "key", "the raw request body bytes", exact_body_key),
        Strategy(
            "normalized", "key", "all fields, message text case/whitespace/punctuation-folded", normalized_key
        ),
        Strategy("last-message", "key", "the last user message only", last_message_key),
    ]
    out += [
        Strategy(
            f"lexical@{t:g}", "lexical", f"word-trigram Jaccard of the prompt text >= {t:g}", threshold=t
        )
        for t in lexical
    ]
    out += [
        Strategy(f"semantic@{t:g}", "semantic", f"embedding cosine of the prompt text >= {t:g}", threshold=t)
        for t in semantic
    ]
    return out
