"""Provider kind -> adapter."""

from __future__ import annotations

from nextmodel_proxy.upstream.base import Adapter
from nextmodel_proxy.upstream.demo import DemoAdapter
from nextmodel_proxy.upstream.openai import OpenAIAdapter

ADAPTERS: dict[str, Adapter] = {
    "openai": OpenAIAdapter(),
    "demo": DemoAdapter(),
}


def adapter_for(kind: str) -> Adapter:
    return ADAPTERS[kind]
