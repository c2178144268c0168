"""``modelhost serve`` and ``modelhost config``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from modelhost import __version__
from modelhost.cli.common import JsonOpt, err, json_mode, print_json, registry, run, settings
from modelhost.errors import InvalidInput
from modelhost.gateway.redact import install_redaction


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
    ssl_certfile: Annotated[
        Path | None, typer.Option(help="TLS certificate (PEM); with --ssl-keyfile the server speaks HTTPS.")
    ] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    backend: Annotated[
        str | None,
        typer.Option(help="Where models run: local or ray (default MODELHOST_BACKEND or local)."),
    ] = None,
) -> None:
    """Start the server: Open Inference Protocol v2 over HTTP(S) and gRPC, OpenAI-compatible and admin APIs."""
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
        tls = _tls_options(ssl_certfile, ssl_keyfile)
        app = create_app(s)  # refuses MODELHOST_AUTH=none off loopback before anything else
        app.freeze_after_start = True
        if s.grpc_port:
            _check_port_free(s.host, s.grpc_port)
        _first_start_admin_key()
        import faulthandler
        import gc

        from modelhost.logs import configure_logging

        faulthandler.enable()  # a crash in native model code leaves its Python traceback in the log
        configure_logging(s.log_level, s.log_format)
        install_redaction(s)
        scheme = "https" if tls else "http"
        grpc_note = f", gRPC on {s.host}:{s.grpc_port}" if s.grpc_port else ""
        err.print(
            f"modelhost {__version__} serving on {scheme}://{s.host}:{s.port}{grpc_note} "
            f"(registry {_safe_url(s.resolved_database_url)}, backend {s.backend})",
            highlight=False,
        )
        # Everything imported so far (torch alone is ~300k objects) lives as long as the server: moved out
        # of the collector's reach, a full collection no longer scans it (~170 ms each time otherwise).
        gc.collect()
        gc.freeze()
        uvicorn.run(
            app,
            host=s.host,
            port=s.port,
            log_config=None,
            log_level=s.log_level,
            access_log=False,
            ssl_certfile=tls.get("ssl_certfile"),
            ssl_keyfile=tls.get("ssl_keyfile"),
        )

    run(body)


def _tls_options(certfile: Path | None, keyfile: Path | None) -> dict[str, str]:
    if certfile is None and keyfile is None:
        return {}
    if certfile is None or keyfile is None:
        raise InvalidInput("TLS needs both --ssl-certfile and --ssl-keyfile")
    for flag, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        if not path.is_file():
            raise InvalidInput(f"{flag} {path} does not exist or is not a file")
    return {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile)}


def _first_start_admin_key() -> None:
    """At the first start (no active admin key yet) create one and print it once, to the terminal
    only: never to a log, which the redaction filter would mangle and others may read."""
    from modelhost.gateway.keys import KeyService

    raw = KeyService(registry().session, settings()).ensure_admin_key("first-start")
    if raw is not None:
        err.print(
            "created the first admin key; it is shown only now (more: 'modelhost keys create'):",
            highlight=False,
        )
        err.print(raw, highlight=False, soft_wrap=True)


def config(as_json: JsonOpt = False) -> None:
    """Print every setting (environment variable, default, meaning) as a Markdown table."""
    from modelhost.config import Settings, settings_table

    if not json_mode(as_json):
        print(settings_table())
        return
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
        rows.append(
            {"variable": f"MODELHOST_{name.upper()}", "default": default, "description": field.description}
        )
    print_json(rows)
