"""A pure-ASGI fast path for ``POST /v1/translations``, the task route whose engine call (≈ 10 ms for a
sentence) is short enough for FastAPI's per-request work to show: route matching over every route,
dependency solving (auth, metering), body validation through FastAPI (about 2 ms per request on 2
cores, 30 % of the server's overhead at batch 1; benchmarks/RESULTS.md).

It does what the route does, in the same order and through the same functions — key check (401),
scope and limits (403/429, x-ratelimit-* headers through the scope), ``TranslationRequest``
validation, ``tasks.translate``, metering settlement, denial metrics — and answers errors in
OpenAI's shape (``serving.errors.openai_error``). A body that is not valid JSON for the request model
(every 400 of validation), another content type, a ``root_path`` or dependency overrides go to the
FastAPI route unchanged, with the body already read handed on, so those answers stay the route's.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelhost.errors import ModelhostError
from modelhost.serving.deps import admit_from_headers
from modelhost.serving.edge import read_body
from modelhost.serving.errors import count_denial, openai_error
from modelhost.serving.rest.tasks import TranslationRequest, translate

log = logging.getLogger(__name__)

PATH = "/v1/translations"
_WANTED = frozenset({b"authorization", b"x-api-key", b"api-key", b"content-type"})


class TaskFastPath:
    """Mounted next to ``InferFastPath`` (innermost, just outside the router); see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        app = scope.get("app")
        state = getattr(app, "state", None)
        plane = getattr(state, "plane", None)
        gateway = getattr(state, "gateway", None)
        if plane is None or gateway is None or getattr(app, "dependency_overrides", None):
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name in _WANTED and name not in headers:  # the first of repeated headers, as Starlette
                headers[name.decode()] = value.decode("latin-1")
        try:
            body = await read_body(receive)  # the edge middleware around it enforces the limit
        except ClientDisconnect:
            return
        request: TranslationRequest | None = None
        if headers.get("content-type", "").split(";")[0].strip().lower() == "application/json":
            try:
                request = TranslationRequest.model_validate_json(body)
            except ValidationError:
                request = None
        if request is None:  # the route answers (its 400 wording), after the same key check
            await self.app(scope, _replay(body, receive), send)
            return
        response_headers: dict[str, str] = {"content-type": "application/json"}
        try:
            answer = await self._translate(scope, plane, gateway, request, headers)
            status, payload = 200, orjson.dumps(answer)
        except ModelhostError as exc:
            if exc.status_code in (401, 403, 429):
                count_denial(plane, scope, exc)
            status = exc.status_code
            payload = orjson.dumps(openai_error(exc.status_code, exc.message, exc.code, exc.param))
            response_headers.update(getattr(exc, "headers", None) or {})
        except Exception as exc:
            log.exception("unhandled error on POST %s", PATH)
            status = 500
            message = f"internal server error ({type(exc).__name__}); see the server log"
            payload = orjson.dumps(openai_error(500, message))
        raw = [(b"content-length", str(len(payload)).encode())]
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response_headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": payload})

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
