"""Log output for `nmproxy serve`: text for people, or one JSON object per line (--log-format json).

Records may carry structured fields in `extra={"nm": {...}}` (the per-request line does); the JSON format
puts them at the top level beside ts, level, logger and msg. Nothing here ever sees a key or a body.
"""

from __future__ import annotations

import datetime as dt
import logging

import orjson
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_protocol import RequestPayloadError

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "nm", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class ClientMistakes(logging.Filter):
    """aiohttp logs a malformed request (bad header bytes, a body that is not its Content-Encoding) at ERROR
    with a traceback: anyone could fill the log that way. Such a record becomes one INFO line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if record.name.startswith("aiohttp") and isinstance(exc, BadHttpMessage | RequestPayloadError):
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            lines = [line for line in lines if not line.startswith("400, message")]
            record.msg, record.args = (
                "malformed request refused with 400: %s",
                (lines[0][:120] if lines else ""),
            )
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(ClientMistakes())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
