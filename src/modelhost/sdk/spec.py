"""The request-spec layer shared by ``Client`` and ``AsyncClient``.

Each SDK operation is written once, as a generator (a *flow*) that yields ``Spec`` objects (what to
send and how to read the answer) and receives the parsed results. The two clients are thin transports
that drive flows: one with ``httpx.Client``, one with ``httpx.AsyncClient``. Retry decisions
(``RetryPolicy``) and SSE decoding live here too, so both transports behave the same.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import orjson

from modelhost.errors import ModelhostError, ModelNotReady, QuotaExceeded, RateLimited
from modelhost.sdk.errors import BY_CODE, build_error

T = TypeVar("T")
C = TypeVar("C")

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


def parse_json(resp: httpx.Response) -> Any:
    return None if resp.status_code == 204 or not resp.content else orjson.loads(resp.content)


@dataclass
class Spec(Generic[T]):
    """One HTTP request and how to turn its successful answer into a result."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    data: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    parse: Callable[[httpx.Response], T] = parse_json
    # Streaming (SSE): turns each event's JSON into a chunk; the answer is then a stream of chunks.
    chunk: Callable[[Any], Any] | None = None
    # The answer goes to ``parse`` whatever its status (health checks): no error, no retry.
    raw_status: bool = False
    # Called before a retry, e.g. to seek an uploaded file back to its start.
    rewind: Callable[[], None] | None = None


# An SDK operation: yields specs, receives each one's result, returns the operation's result.
Flow = Generator[Spec[Any], Any, T]


class Chunks(Generic[C]):
    """Type marker for a flow whose result is a stream of ``C`` (``Stream`` or ``AsyncStream``)."""


def q(part: str | int, safe: str = "") -> str:
    return quote(str(part), safe=safe)


def model_path(name: str, version: str | int | None) -> str:
    path = f"/v2/models/{q(name, '@')}"
    return f"{path}/versions/{q(version)}" if version is not None else path


def drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class RetryPolicy:
    """Retries with exponential backoff and jitter.

    Retried: 429 (rate limited, overloaded; not a spent quota) and 503 (model loading, gateway
    unavailable) answers, and connection errors (a failed connect always; a broken connection only for
    idempotent methods). ``Retry-After`` is honoured when the server sends it, up to
    ``max_retry_after`` seconds (a longer wait raises at once). A stream is never retried once its
    first byte has arrived.
    """

    max_retries: int = 2
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    max_backoff: float = 20.0
    max_retry_after: float = 60.0
    jitter: bool = True

    def retryable(self, exc: ModelhostError) -> bool:
        if isinstance(exc, QuotaExceeded):
            return False
        return isinstance(exc, RateLimited | ModelNotReady) and exc.status_code in (429, 503)

    def retryable_transport(self, exc: httpx.TransportError, method: str) -> bool:
        return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) or method in IDEMPOTENT

    def delay(self, attempt: int, retry_after: str | None = None) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``; None when the server asks for longer
        than ``max_retry_after``."""
        wait = parse_retry_after(retry_after)
        if wait is not None:
            return wait if wait <= self.max_retry_after else None
        base = min(self.max_backoff, self.backoff * (2**attempt))
        # "equal jitter": at least half the backoff, so retries never collapse to zero
        return base / 2 + random.uniform(0, base / 2) if self.jitter else base


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date (RFC 9110)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def sse_data(line: str) -> bytes | None:
    """The payload of an SSE ``data:`` line; None for other lines (comments, blank separators)."""
    if not line.startswith("data:"):
        return None
    return line[5:].strip().encode()


def sse_chunk(payload: bytes, chunk: Callable[[Any], Any]) -> Any:
    """Decode one event; an error event (the server failed mid-stream) raises its mapped error."""
    event = orjson.loads(payload)
    if isinstance(event, dict) and "error" in event:
        err = event["error"] if isinstance(event["error"], dict) else {}
        known = BY_CODE.get(str(err.get("code")))
        status = known.status_code if known else 400 if err.get("type") == "invalid_request_error" else 500
        raise build_error(status, event)
    return chunk(event)


DONE = b"[DONE]"
