"""Talking to providers: one adapter per kind (openai, anthropic, gemini, demo) behind upstream.base's
UpstreamCall, translations to and from OpenAI chat, and failover (retry with backoff, then the next
candidate) with the one mapping of transport failures (timeout 504, otherwise 502)."""
