"""Which endpoints a model's upstream serves natively (the `endpoints:` model key and its defaults)."""

from __future__ import annotations

from urllib.parse import urlsplit

from nextmodel_proxy.config import ModelConfig, ProviderConfig
from nextmodel_proxy.config.models import NATIVE_BY_KIND

ALLOWED = NATIVE_BY_KIND
OPENAI_HOSTS = frozenset({"api.openai.com"})
# The wire format a translated request is spoken to the upstream in (the x-nextmodel-translated value).
UPSTREAM_WIRE = {
    "openai": "openai-chat",
    "demo": "openai-chat",
    "anthropic": "anthropic-messages",
    "gemini": "gemini",
}


def default_endpoints(provider: ProviderConfig) -> frozenset[str]:
    """When a model has no `endpoints:`: OpenAI itself serves all four OpenAI endpoints; other OpenAI-compatible
    APIs chat, embeddings and completions (Responses is translated to chat); Anthropic serves messages; Gemini
    none of these natively (its adapter translates chat); the demo provider chat, embeddings and completions."""
    if provider.kind == "openai":
        host = urlsplit(provider.base_url).hostname or ""
        if host in OPENAI_HOSTS:
            return ALLOWED["openai"]
        return frozenset({"chat", "embeddings", "completions"})
    return ALLOWED.get(provider.kind, frozenset())


def native_endpoints(provider: ProviderConfig, model: ModelConfig) -> frozenset[str]:
    configured = model.endpoints
    return configured if configured is not None else default_endpoints(provider)
