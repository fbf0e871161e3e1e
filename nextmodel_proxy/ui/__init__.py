"""The spend dashboard served at /ui: access (who may see what), views (the figures, as JSON-ready dicts from the
ledger's rollups), pages (HTML from those dicts), routes (thin aiohttp handlers), plus /metrics for Prometheus."""
