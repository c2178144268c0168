"""The edge of every HTTP request: request id, body-size limit, x-ratelimit-* headers, access log.

One pure-ASGI middleware (``EdgeMiddleware``) does all four for the FastAPI routes with a single
``send`` wrapper; the fast paths that answer ahead of FastAPI's stack (OIP infer: ``v2_fast``,
/v1/translations: ``tasks_fast``) do the same, and the tracing span, through ``at_edge`` and
``send_answer``.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelhost.errors import PayloadTooLarge
from modelhost.logs import REQUEST_ID_HEADER, request_id
from modelhost.monitoring import tracing
from modelhost.serving.deps import RATELIMIT_SCOPE_KEY

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_REQUEST_ID = REQUEST_ID_HEADER.encode()
access_log = logging.getLogger("modelhost.access")


class RequestIds:
    """The client's ``x-request-id`` when well-formed, else a new one: 32 hex digits as a uuid4 gives,
    at a fraction of its cost per request (16 random per process, then a counter: unique within the
    process and, by the prefix, across processes)."""

    def __init__(self) -> None:
        self._prefix = uuid.uuid4().hex[:16]
        self._count = itertools.count()

    def take(self, given: bytes | None) -> str:
        if given:
            text = given.decode("latin-1")
            if _VALID_ID.match(text):
                return text
        return f"{self._prefix}{next(self._count):016x}"


class BodyTooLarge(PayloadTooLarge, StarletteHTTPException):
    """``PayloadTooLarge`` raised from ``receive`` while a body streams in. FastAPI reading a route's
    body turns any other exception into its 400 "There was an error parsing the body", but re-raises
    an HTTPException; the app's handlers then find ``ModelhostError``'s (first in the MRO): a 413 in
    the protocol's shape, as any other ``PayloadTooLarge``."""

    def __init__(self, message: str) -> None:
        PayloadTooLarge.__init__(self, message)  # its super().__init__(message) reaches HTTPException's
        StarletteHTTPException.__init__(self, PayloadTooLarge.status_code, message)


def too_large_message(max_bytes: int) -> str:
    return f"request body is larger than the limit of {max_bytes} bytes (MODELHOST_MAX_BODY_BYTES)"


def payload_too_large(path: str, max_bytes: int) -> bytes:
    """The 413 body for a request refused by its declared length, in the protocol's own shape."""
    body: dict[str, Any]
    if path.startswith("/v1/"):
        body = {"error": {"message": too_large_message(max_bytes), "type": "invalid_request_error",
                          "param": None, "code": "payload_too_large"}}  # fmt: skip
    else:
        body = {"error": too_large_message(max_bytes)}
    return orjson.dumps(body)


def declared_too_large(value: bytes, max_bytes: int) -> bool:
    try:
        return int(value) > max_bytes
    except ValueError:
        return False  # not a number: the server's HTTP parser judges it, the streamed count limits it


async def read_body(receive: Receive, max_bytes: int | None = None) -> bytes:
    """The whole request body from ``receive``; ClientDisconnect if the client went away, 413
    (PayloadTooLarge) once more than ``max_bytes`` arrived (None: the caller's limit applies)."""
    chunks: list[bytes] = []
    seen = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        seen += len(chunk)
        if max_bytes is not None and seen > max_bytes:
            raise PayloadTooLarge(too_large_message(max_bytes))
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def add_ratelimit_headers(headers: list[tuple[bytes, bytes]], extra: dict[str, str] | None) -> None:
    """Append the admitted request's x-ratelimit-* headers (left in the scope by the gateway
    admission) that the response does not carry already (a 429 brings its own)."""
    if not extra:
        return
    present = {name.lower() for name, _ in headers}
    for k, v in extra.items():
        name = k.lower().encode()
        if name not in present:
            headers.append((name, v.encode()))


def log_access(scope: Scope, status: int, started: float) -> None:
    access_log.info(
        "%s %s %s", scope.get("method"), scope.get("path"), status,
        extra={"status": status, "duration_ms": round((time.perf_counter() - started) * 1000, 3)},
    )  # fmt: skip


def scan_headers(
    scope: Scope, wanted: frozenset[bytes], max_bytes: int
) -> tuple[dict[str, str], bytes | None, bool]:
    """One pass over a request's headers for a fast path: the ``wanted`` ones (the first of repeated
    headers, as Starlette), the client's x-request-id, and whether the declared length is over
    ``max_bytes``."""
    headers: dict[str, str] = {}
    given_id: bytes | None = None
    too_large = False
    for name, value in scope["headers"]:
        if name in wanted:
            if name not in headers:
                headers[name.decode()] = value.decode("latin-1")
        elif name == _REQUEST_ID:
            given_id = given_id or value
        elif name == b"content-length":
            too_large = too_large or declared_too_large(value, max_bytes)
    return headers, given_id, too_large


async def at_edge(
    scope: Scope,
    rid: str,
    tracer: Any | None,
    access_log_on: bool,
    answer: Callable[[], Awaitable[int]],
) -> None:
    """Run ``answer`` (which sends the response and returns its status, 0 if none was sent) as
    ``EdgeMiddleware`` and ``TracingMiddleware`` run a route: request id ``rid`` in the logging
    context, the tracing span, the access-log record. For the fast paths answering ahead of them."""
    token = request_id.set(rid)
    started = time.perf_counter()
    status = 0
    try:
        if tracer is None:
            status = await answer()
        else:
            with tracing.start_span(tracer, scope) as span:
                tracing.record_request(span, scope)
                status = await answer()
                tracing.record_response(span, status, rid)
    finally:
        if access_log_on:
            log_access(scope, status, started)
        request_id.reset(token)


async def send_answer(
    send: Send, scope: Scope, status: int, payload: bytes, headers: dict[str, str], rid: str
) -> int:
    """One whole response, with the headers ``EdgeMiddleware`` adds (x-request-id, the admitted
    request's x-ratelimit-*); returns ``status``."""
    raw = [(b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((_REQUEST_ID, rid.encode()))
    add_ratelimit_headers(raw, scope.get(RATELIMIT_SCOPE_KEY))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
    return status


class EdgeMiddleware:
    """Request id (echoed as ``x-request-id`` and set for logs), 413 for bodies over ``max_bytes``
    (by the declared length before anything is read, else while the body streams in), the
    x-ratelimit-* headers of the admitted request, and optionally one access-log record."""

    def __init__(self, app: ASGIApp, ids: RequestIds, max_bytes: int, access_log: bool = False) -> None:
        self.app = app
        self.ids = ids
        self.max_bytes = max_bytes
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given: bytes | None = None
        too_large = False
        for name, value in scope.get("headers", ()):
            if name == _REQUEST_ID and given is None:
                given = value
            elif name == b"content-length":
                too_large = too_large or declared_too_large(value, self.max_bytes)
        rid = self.ids.take(given)
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 0

        async def edge_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((_REQUEST_ID, rid.encode()))
                add_ratelimit_headers(headers, scope.get(RATELIMIT_SCOPE_KEY))
                message["headers"] = headers
            await send(message)

        try:
            if too_large:
                payload = payload_too_large(scope.get("path", ""), self.max_bytes)
                await edge_send({"type": "http.response.start", "status": 413, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})  # fmt: skip
                await edge_send({"type": "http.response.body", "body": payload})
                return
            seen = 0
            max_bytes = self.max_bytes

            async def limited_receive() -> Message:
                nonlocal seen
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > max_bytes:
                        raise BodyTooLarge(too_large_message(max_bytes))
                return message

            await self.app(scope, limited_receive, edge_send)
        finally:
            if self.access_log:
                log_access(scope, status, started)
            request_id.reset(token)
