"""Maps every error to its protocol's shape once: OIP/admin answer {"error": "..."}, OpenAI routes
(/v1/...) answer {"error": {"message", "type", "param", "code"}}. Framework defaults never leak."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelhost.errors import ModelhostError
from modelhost.serving.responses import JSONBytes

log = logging.getLogger(__name__)

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}


def error_response(
    request: Request,
    status: int,
    message: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONBytes:
    if request.url.path.startswith("/v1/"):
        body = openai_error(status, message, code, param)
        return JSONBytes(body, status_code=status, headers=headers)
    return JSONBytes({"error": message}, status_code=status, headers=headers)


def openai_error(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The body of an error under /v1 (OpenAI's shape)."""
    return {
        "error": {
            "message": message,
            "type": _OPENAI_TYPES.get(status, "server_error"),
            "param": param,
            "code": code,
        }
    }


def _loc(err: Any) -> str:
    if err.get("type") == "json_invalid":  # its loc is ("body", character offset): no field at fault
        return ""
    return ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))


def validation_param(errors: list[Any]) -> str | None:
    """The first field at fault, for OpenAI's ``param``."""
    return (_loc(errors[0]) or None) if errors else None


def format_validation_errors(errors: list[Any]) -> str:
    parts = []
    for err in errors[:5]:
        loc = _loc(err)
        if err.get("type") == "extra_forbidden":
            # Never ignore a field silently: name it so the client learns it is not supported.
            parts.append(f"unsupported parameter '{loc}'")
            continue
        if err.get("type") == "json_invalid":
            where = err.get("loc", ())[-1:]
            at = f" at character {where[0]}" if where and isinstance(where[0], int) else ""
            parts.append(f"the body is not valid JSON{at} ({err.get('msg', 'JSON decode error')})")
            continue
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid")))
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "invalid request: " + "; ".join(parts) + more


def _count_denial(request: Request, exc: ModelhostError) -> None:
    count_denial(getattr(request.app.state, "plane", None), request.scope, exc)


def count_denial(plane: Any, scope: Any, exc: ModelhostError) -> None:
    """Count a 401/403/429 under the key's public id (the auth dependency leaves it in the scope)."""
    if plane is not None:
        plane.metrics.denials.labels(scope.get("modelhost.key_id", "unknown"), exc.code).inc()


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ModelhostError)
    async def _modelhost_error(request: Request, exc: ModelhostError) -> JSONBytes:
        if exc.status_code in (401, 403, 429):
            _count_denial(request, exc)
        # RateLimited carries Retry-After and x-ratelimit-* headers
        headers = getattr(exc, "headers", None)
        return error_response(request, exc.status_code, exc.message, exc.code, exc.param, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONBytes:
        errors = list(exc.errors())
        return error_response(
            request, 400, format_validation_errors(errors), "invalid_input", validation_param(errors)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONBytes:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route for {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        response = error_response(request, exc.status_code, message)
        for name, value in (exc.headers or {}).items():  # e.g. Allow on a 405 (RFC 9110)
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONBytes:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            request, 500, f"internal server error ({type(exc).__name__}); see the server log"
        )
