"""A pure-ASGI fast path for ``POST /v1/translations``, the task route whose engine call (≈ 10 ms for a
sentence) is short enough for FastAPI's per-request work to show: its middleware stack, route
matching over every route, dependency solving (auth, metering), body validation through FastAPI
(about 2 ms per request on 2 cores, 30 % of the server's overhead at batch 1; benchmarks/RESULTS.md).

Like ``v2_fast.InferFastPath`` the app (``serving/app.py``) hands it the request before FastAPI's
stack, and it does what the stack and the route do, in the same order and through the same
functions — request id, body limit (413), the tracing span and access log (``edge.at_edge``), key
check (401), scope and limits (403/429, x-ratelimit-* headers), ``TranslationRequest`` validation,
``tasks.translate``, metering settlement, denial metrics — and answers errors in OpenAI's shape
(``serving.errors.openai_error``). A body that is not valid JSON for the request model (every 400 of
validation), another content type, a declared length over the limit, a ``root_path``, dependency
overrides or a server not started go through FastAPI to the route unchanged (the body already read
handed on), so those answers stay the route's.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelhost.errors import ModelhostError, PayloadTooLarge
from modelhost.serving.deps import admit_from_headers
from modelhost.serving.edge import (
    RequestIds,
    at_edge,
    payload_too_large,
    read_body,
    scan_headers,
    send_answer,
)
from modelhost.serving.errors import count_denial, openai_error
from modelhost.serving.rest.tasks import TranslationRequest, translate

log = logging.getLogger(__name__)

PATH = "/v1/translations"
_WANTED = frozenset({b"authorization", b"x-api-key", b"api-key", b"content-type"})
_JSON = {"content-type": "application/json"}


class TaskFastPath:
    """Called by the app for every request; ``match`` says whether it answers it (see the module
    docstring). ``route`` is the FastAPI app's own ``__call__`` (stack and router), for what it hands on."""

    def __init__(self, app: Any, route: ASGIApp, ids: RequestIds, max_body_bytes: int, access_log: bool,
                 tracer: Any | None) -> None:  # fmt: skip
        self.app = app  # the FastAPI app: its state (plane, gateway) and dependency overrides
        self.route = route
        self.ids = ids
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.tracer = tracer

    def match(self, scope: Scope) -> str | None:
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or scope.get("root_path")
            or self.app.dependency_overrides
        ):
            return None
        state = self.app.state
        if getattr(state, "plane", None) is None or getattr(state, "gateway", None) is None:
            return None
        return PATH

    async def handle(self, scope: Scope, receive: Receive, send: Send, match: str) -> None:
        headers, given_id, too_large = scan_headers(scope, _WANTED, self.max_body_bytes)
        if too_large:  # the edge middleware's 413, before anything is read
            await self.route(scope, receive, send)
            return
        try:
            body = await read_body(receive, self.max_body_bytes)
        except ClientDisconnect:
            return
        except PayloadTooLarge:  # more arrived than declared: the edge middleware's 413, answered here
            rid = self.ids.take(given_id)

            async def refuse() -> int:
                payload = payload_too_large(PATH, self.max_body_bytes)
                return await send_answer(send, scope, 413, payload, _JSON, rid)

            await at_edge(scope, rid, self.tracer, self.access_log, refuse)
            return
        request: TranslationRequest | None = None
        if headers.get("content-type", "").split(";")[0].strip().lower() == "application/json":
            try:
                request = TranslationRequest.model_validate_json(body)
            except ValidationError:
                request = None
        if request is None:  # the route answers (its 400 wording), after the same key check
            await self.route(scope, _replay(body, receive), send)
            return
        scope["app"] = self.app
        rid = self.ids.take(given_id)

        async def answer() -> int:
            return await self._answer(scope, send, request, headers, rid)

        await at_edge(scope, rid, self.tracer, self.access_log, answer)

    async def _answer(
        self, scope: Scope, send: Send, request: TranslationRequest, headers: dict[str, str], rid: str
    ) -> int:
        state = self.app.state
        plane = state.plane
        response_headers: dict[str, str] = _JSON
        try:
            answer = await self._translate(scope, plane, state.gateway, request, headers)
            status, payload = 200, orjson.dumps(answer)
        except ModelhostError as exc:
            if exc.status_code in (401, 403, 429):
                count_denial(plane, scope, exc)
            status = exc.status_code
            payload = orjson.dumps(openai_error(exc.status_code, exc.message, exc.code, exc.param))
            response_headers = {**_JSON, **(getattr(exc, "headers", None) or {})}
        except Exception as exc:
            log.exception("unhandled error on POST %s", PATH)
            status = 500
            message = f"internal server error ({type(exc).__name__}); see the server log"
            payload = orjson.dumps(openai_error(500, message))
        return await send_answer(send, scope, status, payload, response_headers, rid)

    @staticmethod
    async def _translate(
        scope: Scope, plane: Any, gateway: Any, request: TranslationRequest, headers: dict[str, str]
    ) -> dict[str, Any]:
        usage = await admit_from_headers(scope, gateway, headers, request.model)
        try:
            return await translate(plane, request)
        except BaseException:
            usage.error = True
            raise
        finally:
            await usage.settle()


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the route the body already read, then waits on the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
