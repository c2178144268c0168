"""A pure-ASGI fast path for the OIP v2 hot path, ``POST /v2/models/{name}[/versions/{v}]/infer``.

The FastAPI route costs more than a small model's prediction: route matching over every route,
dependency solving (auth, metering, path parameters), the Request object. This middleware answers
exactly these two paths itself, doing what the route does in the same order — key check (401),
scope and limits (403/429, x-ratelimit-* headers through the scope as the dependency leaves them),
body read (413 from the body-size middleware), decode (400), ``DataPlane.infer`` (404/503/...),
metering settlement, denial metrics, errors in the OIP shape — through the same functions
(``deps.key_from_headers``, ``Gateway.authenticate/admit``, ``v2.run_infer``).

Anything unusual goes to the FastAPI route unchanged: another method, a model name the route's
pattern refuses (its 400 wording), a ``root_path``, dependency overrides (tests, benchmarks), or a
server not started. Middlewares outside this one (request id, rate-limit headers, body size,
tracing) apply to both paths alike.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelhost.errors import ModelhostError
from modelhost.serving.deps import KEY_ID_SCOPE, RATELIMIT_SCOPE_KEY, key_from_headers
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


class InferFastPath:
    """Mounted innermost among the middlewares (just outside the router); see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        match = _INFER_PATH.fullmatch(scope["path"])
        app = scope.get("app")
        state = getattr(app, "state", None)
        if match is None or state is None or getattr(app, "dependency_overrides", None):
            await self.app(scope, receive, send)
            return
        plane = getattr(state, "plane", None)
        gateway = getattr(state, "gateway", None)
        if plane is None or gateway is None:
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name in _WANTED and name not in headers:  # the first of repeated headers, as Starlette
                headers[name.decode()] = value.decode("latin-1")
        try:
            payload, response_headers = await self._infer(
                scope, receive, plane, gateway, state, match, headers
            )
            status = 200
        except ClientDisconnect:
            return  # nobody to answer; usage was settled as an error
        except ModelhostError as exc:
            if exc.status_code in (401, 403, 429):
                count_denial(plane, scope, exc)
            status = exc.status_code
            payload = orjson.dumps({"error": exc.message})
            response_headers = {"content-type": "application/json", **(getattr(exc, "headers", None) or {})}
        except Exception as exc:
            log.exception("unhandled error on POST %s", scope["path"])
            status = 500
            payload = orjson.dumps(
                {"error": f"internal server error ({type(exc).__name__}); see the server log"}
            )
            response_headers = {"content-type": "application/json"}
        raw = [(b"content-length", str(len(payload)).encode())]
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response_headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": payload})

    async def _infer(
        self,
        scope: Scope,
        receive: Receive,
        plane: Any,
        gateway: Any,
        state: Any,
        match: re.Match[str],
        headers: dict[str, str],
    ) -> tuple[bytes, dict[str, str]]:
        presented = key_from_headers(
            headers.get("authorization"), headers.get("x-api-key") or headers.get("api-key")
        )
        key = await gateway.authenticate(presented)
        scope[KEY_ID_SCOPE] = key.key_id
        model_name, model_version = match.group(1), match.group(2)
        key.require_infer(model_name)
        usage = await gateway.admit(key, model_name, model_version or "")
        if usage.headers:
            scope[RATELIMIT_SCOPE_KEY] = usage.headers
        try:
            body = await _read_body(receive)
            return await run_infer(
                plane, usage, model_name, model_version, body, headers.get, state.settings.log_payloads
            )
        except BaseException:
            usage.error = True
            raise
        finally:
            await usage.settle()


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
