"""Test helpers shared by the provider-translation tests: targets, stream driving, openai SDK checks."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from nextmodel_proxy.config import ModelConfig, ProviderConfig
from nextmodel_proxy.sse import DONE, SSESplitter
from nextmodel_proxy.upstream.base import Target
from nextmodel_proxy.upstream.registry import adapter_for


def make_target(
    kind: str,
    base_url: str,
    upstream_id: str,
    key_env: str = "NM_TEST_PROVIDER_KEY",
    max_output: int | None = None,
) -> Target:
    provider = ProviderConfig(
        name=f"test-{kind}",
        kind=kind,
        base_url=base_url,
        api_key_env=key_env,
        timeout_s=5.0,
        connect_timeout_s=2.0,
    )
    model = ModelConfig(
        id=f"m-{upstream_id}", provider=provider.name, upstream_id=upstream_id, max_output=max_output
    )
    return Target(provider, model)


def drive(translator: Any, raw: bytes, piece: int = 23) -> list[bytes]:
    """Feed raw upstream SSE bytes in odd-sized pieces through a splitter and a stream translator."""
    splitter = SSESplitter()
    out: list[bytes] = []
    for start in range(0, len(raw), piece):
        for event in splitter.feed(raw[start : start + piece]):
            out.extend(translator.feed(event))
            if translator.done:
                return out
    return out + translator.end()


def parse_events(events: list[bytes]) -> tuple[list[dict[str, Any]], bool, dict[str, Any] | None]:
    """(chunk objects, whether [DONE] ended the stream, the error object of an error event)."""
    chunks, error = [], None
    for event in events:
        assert event.endswith(b"\n\n") and event.startswith(b"data: "), event
        if event == DONE:
            continue
        obj = orjson.loads(event[6:])
        if "error" in obj:
            error = obj["error"]
        else:
            chunks.append(obj)
    return chunks, bool(events) and events[-1] == DONE, error


def accumulate(chunks: list[dict[str, Any]]) -> ChatCompletion:
    """Validate each chunk as the openai SDK does and accumulate them with its own stream state."""
    state = ChatCompletionStreamState()
    for obj in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(obj))
    return state.get_final_completion()


def completion_of(body: bytes) -> ChatCompletion:
    return ChatCompletion.model_validate(orjson.loads(body))


async def open_and_collect(
    kind: str,
    base_url: str,
    upstream_id: str,
    body: dict[str, Any],
    key_env: str,
    client_headers: dict[str, str],
) -> tuple[Any, Any]:
    """Open one call through the registry's adapter with a real ClientSession; (call, body bytes or events)."""
    target = make_target(kind, base_url, upstream_id, key_env=key_env)
    async with aiohttp.ClientSession() as session:
        call = await adapter_for(kind).open(
            session, target, body, endpoint="chat", client_headers=client_headers
        )
        try:
            if call.is_stream:
                return call, [e async for e in call.events()]
            return call, await call.read()
        finally:
            call.release()
