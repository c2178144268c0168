"""Optional OpenTelemetry tracing: one server span per HTTP request, when ``opentelemetry-api`` is
installed and ``MODELHOST_OTEL_ENABLED`` is set. Exporters are the operator's choice, configured the
usual OpenTelemetry way (an SDK TracerProvider, e.g. via ``opentelemetry-instrument`` or OTEL_* env)."""

from __future__ import annotations

import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


def tracer() -> Any | None:
    """The modelhost tracer, or None when OpenTelemetry is not installed."""
    try:
        from opentelemetry import trace
    except ImportError:
        log.warning("MODELHOST_OTEL_ENABLED is set but opentelemetry-api is not installed: no tracing")
        return None
    return trace.get_tracer("modelhost")


def start_span(tracer: Any, scope: Scope) -> Any:
    """The SERVER span of one HTTP request (a context manager), as ``TracingMiddleware`` opens it;
    the infer fast path, which answers ahead of the middlewares, opens the same."""
    from opentelemetry.trace import SpanKind

    span = tracer.start_as_current_span(f"{scope.get('method', 'HTTP')} {scope.get('path', '')}",
                                        kind=SpanKind.SERVER)  # fmt: skip
    return span


def record_response(span: Any, status: int, request_id: str | None) -> None:
    """Status code and request id on the span; a 5xx marks it as an error."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("http.response.status_code", status)
    if request_id is not None:
        span.set_attribute("modelhost.request_id", request_id)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


def record_request(span: Any, scope: Scope) -> None:
    span.set_attribute("http.request.method", scope.get("method", ""))
    span.set_attribute("url.path", scope.get("path", ""))


class TracingMiddleware:
    """A SERVER span per request: method, route path, status, request id; errors mark the span."""

    def __init__(self, app: ASGIApp, tracer: Any) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with start_span(self.tracer, scope) as span:
            record_request(span, scope)

            async def traced_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    rid = next((v.decode("latin-1") for k, v in message.get("headers", [])
                                if k == b"x-request-id"), None)  # fmt: skip
                    record_response(span, int(message["status"]), rid)
                await send(message)

            await self.app(scope, receive, traced_send)
