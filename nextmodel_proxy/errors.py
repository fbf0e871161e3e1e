"""ProxyError, the closed list of error codes, and the OpenAI-shaped error body."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

# type -> the OpenAI error `type` a status maps to by default.
_TYPE_FOR_STATUS = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    502: "api_error",
    503: "api_error",
    504: "api_error",
}

# Every code the proxy itself produces. Scripts match on these; add, never rename.
CODES = frozenset(
    {
        "invalid_json",
        "invalid_body",
        "missing_field",
        "invalid_type",
        "invalid_value",
        "invalid_header",
        "unsupported_parameter",
        "model_not_found",
        "model_retired",
        "no_eligible_model",
        "not_found",
        "method_not_allowed",
        "body_too_large",
        "provider_key_missing",
        "upstream_unreachable",
        "upstream_timeout",
        "upstream_error",
        "ledger_unavailable",
        "cache_miss",
        "invalid_api_key",
        "permission_denied",
        "budget_exceeded",
        "rate_limit_exceeded",
        "internal_error",
        "server_busy",
        "server_shutting_down",
        "upstream_too_large",
        "request_timeout",
        "expectation_failed",
    }
)
# Codes a retry of the same request may fix; every other error answers `x-should-retry: false`, so the
# OpenAI SDKs (which retry 408/409/429/5xx by default) do not repeat a request that cannot succeed.
RETRYABLE_CODES = frozenset(
    {
        "rate_limit_exceeded",
        "upstream_unreachable",
        "upstream_timeout",
        "upstream_error",
        "ledger_unavailable",
        "internal_error",
        "server_busy",
        "server_shutting_down",
        "request_timeout",
    }
)
NO_RETRY = {"x-should-retry": "false"}


def retry_headers(code: str | None) -> dict[str, str]:
    """`x-should-retry: false` for an error a retry cannot fix."""
    return {} if code in RETRYABLE_CODES else dict(NO_RETRY)


class ProxyError(Exception):
    """An error the proxy answers itself, with an OpenAI-shaped body."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        *,
        type: str | None = None,  # noqa: A002 - mirrors the OpenAI field name
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if code not in CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type or _TYPE_FOR_STATUS.get(status, "api_error")
        self.param = param
        self.headers = {**retry_headers(code), **(headers or {})}

    def body(self) -> bytes:
        return error_body(self.message, self.type, self.code, self.param)


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    """The JSON bytes of an OpenAI error object."""
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def bad_request(message: str, code: str = "invalid_value", param: str | None = None) -> ProxyError:
    return ProxyError(400, message, code, param=param)
