"""Serves the console's static files with a strict Content-Security-Policy (self only) and cache
headers: the page and our modules are revalidated every time (ETag), the vendored libraries (whose
path names their version) are immutable."""

from __future__ import annotations

import hashlib
import mimetypes
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from modelhost.errors import NotFound
from modelhost.serving.deps import SettingsDep

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}  # fmt: skip

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=256)
def _read(path: Path, mtime_ns: int) -> tuple[bytes, str]:
    body = path.read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _resolve(relative: str) -> Path:
    """A file under static/, never outside it (no '..', no absolute paths, no hidden files)."""
    parts = [p for p in relative.split("/") if p]
    if not parts or any(p.startswith(".") or "\\" in p for p in parts):
        raise NotFound(f"no console file '{relative}'")
    path = STATIC.joinpath(*parts)
    if not path.is_file() or STATIC.resolve() not in path.resolve().parents:
        raise NotFound(f"no console file '{relative}'")
    return path


def _serve(request: Request, path: Path) -> Response:
    body, etag = _read(path, path.stat().st_mtime_ns)
    immutable = "vendor" in path.relative_to(STATIC).parts
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable" if immutable else "no-cache",
        "ETag": etag,
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    media_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Response(body, media_type=media_type, headers=headers)


def _enabled(settings: SettingsDep) -> None:
    if not settings.console_enabled:
        raise NotFound("the console is disabled (MODELHOST_CONSOLE_ENABLED=false)")


@router.get("/console")
async def console_root(settings: SettingsDep) -> RedirectResponse:
    _enabled(settings)
    return RedirectResponse("/console/", status_code=308)


@router.get("/console/")
async def console_index(request: Request, settings: SettingsDep) -> Response:
    _enabled(settings)
    return _serve(request, STATIC / "index.html")


@router.get("/console/{relative:path}")
async def console_file(relative: str, request: Request, settings: SettingsDep) -> Response:
    _enabled(settings)
    return _serve(request, _resolve(relative))
