"""A pure-ASGI fast path for the OIP v2 hot path, ``POST /v2/models/{name}[/versions/{v}]/infer``.

The FastAPI route costs more than a small model's prediction: FastAPI/Starlette's own middleware
stack, route matching over every route, dependency solving (auth, metering, path parameters), the
Request object. The app (``serving/app.py``) hands these two paths to ``InferFastPath`` before any of
that, and it does what the stack and the route do, in the same order, with one ``send``: request id
(``x-request-id`` in and out, the logging context), 413 for a body over the limit, key check (401),
scope and limits (403/429, x-ratelimit-* headers), body read (413 while streaming), decode (400),
``DataPlane.infer`` (404/503/...), metering settlement, denial metrics, errors in the OIP shape,
the tracing span and the access log — through the same functions (``serving/edge.py``,
``deps.key_from_headers``, ``Gateway.authenticate/admit``, ``v2.run_infer``).

Anything unusual goes through FastAPI to the route unchanged: another method, a model name the
route's pattern refuses (its 400 wording), a ``root_path``, dependency overrides (tests, benchmarks),
or a server not started.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from modelhost.errors import ModelhostError, PayloadTooLarge
from modelhost.serving.deps import admit_from_headers
from modelhost.serving.edge import (
    RequestIds,
    at_edge,
    payload_too_large,
    read_body,
    scan_headers,
    send_answer,
    too_large_message,
)
from modelhost.serving.errors import count_denial
from modelhost.serving.rest.v2 import run_infer

log = logging.getLogger(__name__)

# The route's ModelRef pattern, and a version segment as the router matches ``{model_version}``.
_INFER_PATH = re.compile(
    r"/v2/models/([A-Za-z0-9][A-Za-z0-9._-]{0,127}(?:@[a-z][a-z0-9_-]{0,63})?)(?:/versions/([^/]+))?/infer"
)
_WANTED = frozenset(
    {
        b"authorization",
        b"x-api-key",
        b"api-key",
        b"inference-header-content-length",
        b"x-modelhost-routing-key",
    }
)
_JSON = {"content-type": "application/json"}


class InferFastPath:
    """Called by the app for every request; ``match`` says whether it answers it (see the module
    docstring)."""

    def __init__(self, app: Any, ids: RequestIds, max_body_bytes: int, access_log: bool,
                 tracer: Any | None) -> None:  # fmt: skip
        self.app = app  # the FastAPI app: its state (plane, gateway, settings) and dependency overrides
        self.ids = ids
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.tracer = tracer

    def match(self, scope: Scope) -> re.Match[str] | None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            return None
        match = _INFER_PATH.fullmatch(scope["path"])
        if match is None or self.app.dependency_overrides:
            return None
        state = self.app.state
        if getattr(state, "plane", None) is None or getattr(state, "gateway", None) is None:
            return None
        return match

    async def handle(self, scope: Scope, receive: Receive, send: Send, match: re.Match[str]) -> None:
        scope["app"] = self.app
        headers, given_id, too_large = scan_headers(scope, _WANTED, self.max_body_bytes)
        rid = self.ids.take(given_id)

        async def answer() -> int:
            return await self._answer(scope, receive, send, match, headers, rid, too_large)

        await at_edge(scope, rid, self.tracer, self.access_log, answer)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        match: re.Match[str],
        headers: dict[str, str],
        rid: str,
        too_large: bool,
    ) -> int:
        """Answer the request; the status sent (0 when the client went away first)."""
        state = self.app.state
        plane = state.plane
        response_headers: dict[str, str]
        try:
            if too_large:
                raise PayloadTooLarge(too_large_message(self.max_body_bytes))
            payload, response_headers = await self._infer(
                scope, receive, plane, state.gateway, state.settings.log_payloads, match, headers
            )
            status = 200
        except ClientDisconnect:
            return 0  # nobody to answer; usage was settled as an error
        except ModelhostError as exc:
            if exc.status_code in (401, 403, 429):
                count_denial(plane, scope, exc)
            status = exc.status_code
            payload = (
                payload_too_large(scope["path"], self.max_body_bytes)
                if too_large
                else orjson.dumps({"error": exc.message})
            )
            response_headers = {**_JSON, **(getattr(exc, "headers", None) or {})}
        except Exception as exc:
            log.exception("unhandled error on POST %s", scope["path"])
            status = 500
            payload = orjson.dumps(
                {"error": f"internal server error ({type(exc).__name__}); see the server log"}
            )
            response_headers = _JSON
        return await send_answer(send, scope, status, payload, response_headers, rid)

    async def _infer(
        self,
        scope: Scope,
        receive: Receive,
        plane: Any,
        gateway: Any,
        log_payloads: bool,
        match: re.Match[str],
        headers: dict[str, str],
    ) -> tuple[bytes, dict[str, str]]:
        model_name, model_version = match.group(1), match.group(2)
        usage = await admit_from_headers(scope, gateway, headers, model_name, model_version or "")
        try:
            body = await read_body(receive, self.max_body_bytes)
            return await run_infer(plane, usage, model_name, model_version, body, headers.get, log_payloads)
        except BaseException:
            usage.error = True
            raise
        finally:
            await usage.settle()
