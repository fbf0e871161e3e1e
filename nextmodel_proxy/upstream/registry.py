"""Provider kind -> adapter instance."""

from __future__ import annotations

from nextmodel_proxy.upstream.anthropic import AnthropicAdapter
from nextmodel_proxy.upstream.base import Adapter
from nextmodel_proxy.upstream.demo import DemoAdapter
from nextmodel_proxy.upstream.gemini import GeminiAdapter
from nextmodel_proxy.upstream.openai import OpenAIAdapter

ADAPTERS: dict[str, Adapter] = {
    "openai": OpenAIAdapter(),
    "anthropic": AnthropicAdapter(),
    "gemini": GeminiAdapter(),
    "demo": DemoAdapter(),
}


def adapter_for(kind: str) -> Adapter:
    """The adapter for a provider kind (config validation already limits kinds to known ones)."""
    return ADAPTERS[kind]
