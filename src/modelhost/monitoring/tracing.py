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


class TracingMiddleware:
    """A SERVER span per request: method, route path, status, request id; errors mark the span."""

    def __init__(self, app: ASGIApp, tracer: Any) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from opentelemetry.trace import SpanKind, Status, StatusCode

        name = f"{scope.get('method', 'HTTP')} {scope.get('path', '')}"
        with self.tracer.start_as_current_span(name, kind=SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", scope.get("method", ""))
            span.set_attribute("url.path", scope.get("path", ""))

            async def traced_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                    for key, value in message.get("headers", []):
                        if key == b"x-request-id":
                            span.set_attribute("modelhost.request_id", value.decode("latin-1"))
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            await self.app(scope, receive, traced_send)
