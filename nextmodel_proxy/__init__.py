"""NextModel Proxy: an OpenAI-compatible LLM gateway with priced receipts and a verified exact cache."""

__version__ = "0.1.0"
