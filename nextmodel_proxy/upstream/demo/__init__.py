"""kind: demo — an offline model that honours the request's contract (schemas, tools, limits), never the network.

answer: what to reply to a chat request; schema: JSON values from JSON schemas; embed: embedding vectors;
call: the adapter and the OpenAI wire shapes.
"""

from nextmodel_proxy.upstream.demo.call import DemoAdapter, DemoCall

__all__ = ["DemoAdapter", "DemoCall"]
