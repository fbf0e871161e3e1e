"""The client wire formats besides chat: OpenAI Responses, Anthropic Messages, legacy completions.

Each is either passed through to an upstream that serves it natively (the model's `endpoints:` list), or
translated statelessly to and from an OpenAI chat request served by the provider's ordinary adapter.
"""
