"""``modelhost serve`` and ``modelhost config``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from modelhost import __version__
from modelhost.cli.common import err, run, settings
from modelhost.errors import InvalidInput


def _check_port_free(host: str, port: int) -> None:
    """Fail before start-up, with a message instead of uvicorn's lifespan traceback, when the gRPC
    port is taken."""
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.create_server((host, port), family=family):
            pass
    except OSError as exc:
        raise InvalidInput(
            f"cannot serve gRPC on {host}:{port} ({exc.strerror or exc}); set MODELHOST_GRPC_PORT or "
            "--grpc-port to a free port, or turn gRPC off with --no-grpc"
        ) from None


def _safe_url(url: str) -> str:
    """The database URL with its password masked: start-up lines end up in shared logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default MODELHOST_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default MODELHOST_PORT or 8000).")] = None,
    load: Annotated[bool, typer.Option("--load/--no-load", help="Load default versions at start-up.")] = True,
    grpc_port: Annotated[
        int | None, typer.Option(help="gRPC port (default MODELHOST_GRPC_PORT or 8001; 0 disables).")
    ] = None,
    grpc: Annotated[bool, typer.Option("--grpc/--no-grpc", help="Serve OIP v2 over gRPC too.")] = True,
    backend: Annotated[
        str | None,
        typer.Option(help="Where models run: local or ray (default MODELHOST_BACKEND or local)."),
    ] = None,
) -> None:
    """Start the server: Open Inference Protocol v2 over HTTP and gRPC, and the admin API."""
    import uvicorn

    from modelhost.serving.app import create_app

    def body() -> None:
        base = settings()
        updates: dict[str, Any] = {"load_on_start": load and base.load_on_start}
        if host is not None:
            updates["host"] = host
        if port is not None:
            updates["port"] = port
        if grpc_port is not None:
            updates["grpc_port"] = grpc_port
        if not grpc:
            updates["grpc_port"] = 0
        if backend is not None:
            if backend not in ("local", "ray"):
                raise InvalidInput(f"--backend must be local or ray, not {backend!r}")
            updates["backend"] = backend
        s = base.model_copy(update=updates)
        if s.grpc_port:
            _check_port_free(s.host, s.grpc_port)
        grpc_note = f", gRPC on {s.host}:{s.grpc_port}" if s.grpc_port else ""
        err.print(
            f"modelhost {__version__} serving on http://{s.host}:{s.port}{grpc_note} "
            f"(registry {_safe_url(s.resolved_database_url)}, backend {s.backend})",
            highlight=False,
        )
        from modelhost.logs import configure_logging

        configure_logging(s.log_level, s.log_format)
        uvicorn.run(
            create_app(s), host=s.host, port=s.port, log_config=None, log_level=s.log_level, access_log=False
        )

    run(body)


def config() -> None:
    """Print every setting (environment variable, default, meaning) as a Markdown table."""
    from modelhost.config import settings_table

    print(settings_table())
