"""HTTP answers to exceptions: the server's error tree (``modelhost.errors``) rebuilt on the client.

Both error shapes are read: OIP/admin ``{"error": "..."}`` and OpenAI ``{"error": {"message", "type",
"param", "code"}}``. The class comes from the ``code`` where the answer has one (``/v1`` routes), else
from the HTTP status, so ``except NotFound`` works on every route. Every raised error carries
``message``, ``status_code``, ``code``, ``param`` (OpenAI routes), ``headers`` (Retry-After,
x-ratelimit-*) and ``body`` (the parsed answer).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from modelhost import errors
from modelhost.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    ModelhostError,
    ModelNotReady,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    RateLimited,
    RequestTimeout,
    Unauthorized,
)

BY_STATUS: dict[int, type[ModelhostError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidInput,
    429: RateLimited,
    503: ModelNotReady,
    504: RequestTimeout,
}

# Every class of the server's tree by its code, e.g. "model_not_found" -> ModelNotFound.
BY_CODE: dict[str, type[ModelhostError]] = {
    cls.code: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, ModelhostError)
}


class ServerUnreachable(ModelNotReady):
    """No HTTP answer: the connection failed or broke (after the configured retries)."""

    code = "connection_error"


def _header_subset(headers: httpx.Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith(("retry-after", "x-ratelimit"))}


def build_error(
    status: int, body: Any, headers: dict[str, str] | None = None, text: str = ""
) -> ModelhostError:
    """The exception for an error answer (``body`` is the parsed JSON, or None)."""
    err = body.get("error") if isinstance(body, dict) else None
    code = param = None
    if isinstance(err, dict):
        message, code, param = err.get("message"), err.get("code"), err.get("param")
    else:
        message = err
    message = str(message or f"HTTP {status}: {text[:200]}")
    cls = BY_CODE.get(code or "")
    if cls is None or cls.status_code != status:
        cls = BY_STATUS.get(status, ModelhostError)
        # OIP answers carry no code; a spent quota is told apart from a rate limit by its message.
        if cls is RateLimited and "quota" in message:
            cls = QuotaExceeded
    exc = cls.__new__(cls)
    ModelhostError.__init__(exc, message, param=param)
    exc.status_code = status
    exc.code = code or cls.code
    exc.headers = dict(headers or {})  # type: ignore[attr-defined]
    exc.body = body  # type: ignore[attr-defined]
    return exc


def error_from_response(resp: httpx.Response) -> ModelhostError:
    """The exception for an error response whose body has been read."""
    try:
        body = orjson.loads(resp.content) if resp.content else None
    except orjson.JSONDecodeError:
        body = None
    return build_error(
        resp.status_code, body, _header_subset(resp.headers), resp.text if body is None else ""
    )


def raise_for(resp: httpx.Response) -> None:
    """Raise the mapped exception for a 4xx/5xx answer; do nothing otherwise."""
    if resp.status_code >= 400:
        raise error_from_response(resp)
