"""The ``modelhost`` command line (Typer + Rich). User mistakes print a clear message, never a traceback."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from modelhost import __version__
from modelhost.config import Settings
from modelhost.errors import InvalidInput, ModelhostError

app = typer.Typer(
    help="modelhost: register models and serve them over the Open Inference Protocol.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Registered models.", no_args_is_help=True)
versions_app = typer.Typer(help="Versions of a model.", no_args_is_help=True)
aliases_app = typer.Typer(help="Aliases (production, staging, ...) and their history.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(versions_app, name="versions")
app.add_typer(aliases_app, name="aliases")

out = Console()
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic ValidationError: a bad MODELHOST_* variable
        raise InvalidInput(f"invalid configuration in MODELHOST_* environment variables: {exc}") from exc


def _registry():
    from modelhost.registry import Registry

    return Registry(_settings())


def run(fn: Callable[[], T]) -> T:
    """Run a command body, turning modelhost errors into a message and exit code 1."""
    try:
        return fn()
    except ModelhostError as exc:
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        raise typer.Exit(1) from None


def _kv(pairs: list[str] | None, what: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--{what} takes KEY=VALUE, got {pair!r}")
        try:
            result[key] = json.loads(raw)
        except json.JSONDecodeError:
            result[key] = raw
    return result


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value, default=str))


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"modelhost {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """modelhost command line."""


# --- serve ---------------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default MODELHOST_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default MODELHOST_PORT or 8000).")] = None,
    load: Annotated[bool, typer.Option("--load/--no-load", help="Load default versions at start-up.")] = True,
) -> None:
    """Start the HTTP server (Open Inference Protocol v2 + admin API)."""
    import uvicorn

    from modelhost.serving.app import create_app

    def body() -> None:
        settings = _settings()
        updates: dict[str, Any] = {"load_on_start": load and settings.load_on_start}
        if host is not None:
            updates["host"] = host
        if port is not None:
            updates["port"] = port
        settings = settings.model_copy(update=updates)
        err.print(
            f"modelhost {__version__} serving on http://{settings.host}:{settings.port} "
            f"(registry {settings.resolved_database_url})",
            highlight=False,
        )
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=settings.log_level == "debug",
        )

    run(body)


# --- models ----------------------------------------------------------------------------------------


@models_app.command("register")
def models_register(
    path: Annotated[Path, typer.Argument(help="Artifact file: skops (.skops) or ONNX (.onnx).")],
    name: Annotated[str, typer.Option("--name", "-n", help="Model name.")],
    format: Annotated[
        str | None, typer.Option(help="Expected format (skops|onnx); detected from content.")
    ] = None,
    convert_onnx: Annotated[
        bool, typer.Option("--convert-onnx", help="Convert a skops model to ONNX.")
    ] = False,
    description: Annotated[str, typer.Option(help="Free-text description.")] = "",
    metric: Annotated[list[str] | None, typer.Option(help="KEY=VALUE metric (repeatable).")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE training parameter (repeatable).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE tag (repeatable).")] = None,
    lineage: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE lineage (data_hash, code_version...).")
    ] = None,
    alias: Annotated[str | None, typer.Option(help="Point this alias at the new version.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Allow moving a protected --alias.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Register PATH as a new immutable version of model NAME."""

    def body() -> None:
        reg = _registry()
        info = reg.register_version(
            name,
            path,
            format=format,
            convert_onnx=convert_onnx,
            description=description,
            metrics=_kv(metric, "metric"),
            params=_kv(param, "param"),
            tags=_kv(tag, "tag"),
            lineage=_kv(lineage, "lineage"),
            actor="cli",
        )
        if alias:
            reg.set_alias(name, alias, info.version, actor="cli", force=force)
        if as_json:
            _print_json(info.to_dict())
        else:
            out.print(
                f"registered [bold]{name}[/] version {info.version} ({info.format}, sha256 {info.sha256[:12]}…)"
                + (f", alias {alias}" if alias else "")
            )

    run(body)


@models_app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """List registered models."""

    def body() -> None:
        models = _registry().list_models()
        if as_json:
            _print_json([m.to_dict() for m in models])
            return
        table = Table("name", "latest", "aliases", "task", "created")
        for m in models:
            aliases = ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items()))
            table.add_row(
                m.name,
                str(m.latest_version or "-"),
                aliases,
                m.task or "",
                m.created_at.strftime("%Y-%m-%d %H:%M"),
            )
        out.print(table)

    run(body)


@models_app.command("show")
def models_show(name: str, as_json: JsonOpt = False) -> None:
    """Show one model."""
    run(lambda: _print_json(_registry().get_model(name).to_dict()))


# --- versions ---------------------------------------------------------------------------------------


@versions_app.command("list")
def versions_list(name: str, as_json: JsonOpt = False) -> None:
    """List the versions of NAME."""

    def body() -> None:
        versions = _registry().list_versions(name)
        if as_json:
            _print_json([v.to_dict() for v in versions])
            return
        table = Table("version", "format", "aliases", "metrics", "sha256", "created")
        for v in versions:
            metrics = ", ".join(f"{k}={val}" for k, val in v.metrics.items())
            table.add_row(
                str(v.version),
                v.format,
                ", ".join(v.aliases),
                metrics,
                v.sha256[:12],
                v.created_at.strftime("%Y-%m-%d %H:%M"),
            )
        out.print(table)

    run(body)


@versions_app.command("show")
def versions_show(name: str, version: str) -> None:
    """Show one version: signature, metrics, params, lineage."""
    run(lambda: _print_json(_registry().get_version(name, version).to_dict()))


# --- aliases ------------------------------------------------------------------------------------


@aliases_app.command("set")
def aliases_set(
    name: str,
    alias: str,
    version: str,
    force: Annotated[bool, typer.Option("--force", help="Move a protected alias.")] = False,
    protect: Annotated[
        bool | None, typer.Option("--protect/--unprotect", help="Set or clear protection.")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the alias history).")] = "",
) -> None:
    """Point ALIAS of NAME at VERSION (recorded in the alias history)."""

    def body() -> None:
        info = _registry().set_alias(
            name, alias, version, actor="cli", reason=reason, force=force, protect=protect
        )
        out.print(f"{name}@{alias} → version {info.version}" + (" (protected)" if info.protected else ""))

    run(body)


@aliases_app.command("list")
def aliases_list(name: str, as_json: JsonOpt = False) -> None:
    """List the aliases of NAME."""

    def body() -> None:
        aliases = _registry().list_aliases(name)
        if as_json:
            _print_json([a.to_dict() for a in aliases])
            return
        table = Table("alias", "version", "protected", "updated", "by")
        for a in aliases:
            table.add_row(
                a.name,
                str(a.version),
                "yes" if a.protected else "",
                a.updated_at.strftime("%Y-%m-%d %H:%M"),
                a.updated_by,
            )
        out.print(table)

    run(body)


@aliases_app.command("delete")
def aliases_delete(
    name: str,
    alias: str,
    force: Annotated[bool, typer.Option("--force", help="Delete a protected alias.")] = False,
) -> None:
    """Delete ALIAS of NAME."""

    def body() -> None:
        _registry().delete_alias(name, alias, actor="cli", force=force)
        out.print(f"deleted {name}@{alias}")

    run(body)


@aliases_app.command("history")
def aliases_history(name: str, alias: str, as_json: JsonOpt = False) -> None:
    """Show every move of ALIAS: when, who, from which version to which."""

    def body() -> None:
        events = _registry().alias_history(name, alias)
        if as_json:
            _print_json([e.to_dict() for e in events])
            return
        table = Table("when", "from", "to", "by", "reason")
        for e in events:
            table.add_row(
                e.at.strftime("%Y-%m-%d %H:%M:%S"),
                str(e.from_version or "-"),
                str(e.to_version or "-"),
                e.actor,
                e.reason,
            )
        out.print(table)

    run(body)


# --- predict --------------------------------------------------------------------------------------


def _load_json_arg(value: str) -> Any:
    """Parse --json: inline JSON, or '@path' to read a file."""
    if value.startswith("@"):
        try:
            value = Path(value[1:]).read_text()
        except OSError as exc:
            raise InvalidInput(f"cannot read {exc.filename}: {exc.strerror}") from None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--json is not valid JSON: {exc}") from None


@app.command()
def predict(
    name: Annotated[str, typer.Argument(help="Model reference: NAME or NAME@ALIAS.")],
    json_input: Annotated[
        str,
        typer.Option(
            "--json",
            help="OIP v2 request, or a bare array for a single-input model; '@file.json' reads a file.",
        ),
    ],
    version: Annotated[str | None, typer.Option(help="Exact version.")] = None,
    url: Annotated[
        str | None, typer.Option(help="Call this server instead of loading the model here.")
    ] = None,
) -> None:
    """Run one inference, in-process by default or against a running server with --url."""

    def body() -> None:
        payload = _load_json_arg(json_input)
        if url:
            from modelhost.client import Client

            with Client(url) as client:
                if isinstance(payload, dict):
                    import httpx

                    path = client._model_path(name, version) + "/infer"
                    resp = httpx.post(url.rstrip("/") + path, json=payload, timeout=60)
                    from modelhost.client import _raise_for

                    _raise_for(resp)
                    _print_json(resp.json())
                else:
                    result = client.infer(name, payload, version=version)
                    _print_json(result.raw)
            return
        _print_json(asyncio.run(_predict_local(name, version, payload)))

    run(body)


async def _predict_local(name: str, version: str | None, payload: Any) -> Any:
    import orjson

    from modelhost.dataplane.plane import DataPlane
    from modelhost.dataplane.repository import ModelRepository
    from modelhost.serving.rest.v2 import decode_infer_request, encode_infer_response

    settings = _settings()
    reg = _registry()
    plane = DataPlane(reg, ModelRepository(reg, settings), settings)
    if not isinstance(payload, dict):
        info = await plane.resolve(name, version)
        if len(info.signature.inputs) != 1:
            raise InvalidInput(
                f"model '{name}' takes {len(info.signature.inputs)} inputs; pass an OIP request"
            )
        spec = info.signature.inputs[0]
        import numpy as np

        shape = list(np.asarray(payload).shape)
        if len(shape) == len(spec.shape) - 1:
            payload, shape = [payload], [1, *shape]
        payload = {
            "inputs": [{"name": spec.name, "datatype": spec.datatype, "shape": shape, "data": payload}]
        }
    request, _all_binary, _binary_outputs = decode_infer_request(orjson.dumps(payload), None)
    try:
        resp = await plane.infer(name, version, request)
    finally:
        await plane.repository.unload_all()
    return orjson.loads(encode_infer_response(resp, False, set()).body)


@app.command()
def config() -> None:
    """Print every setting (environment variable, default, meaning) as a Markdown table."""
    from modelhost.config import settings_table

    print(settings_table())


# --- demo --------------------------------------------------------------------------------------------


@app.command()
def demo(
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the server afterwards.")
    ] = False,
) -> None:
    """Train iris and digits classifiers, register them with alias 'production', print curl examples."""
    from modelhost.demo import curl_examples, register_demo_models

    def body() -> None:
        settings = _settings()
        with out.status("training and registering demo models…"):
            models = register_demo_models(_registry())
        for m in models:
            note = "already registered" if m.skipped else f"accuracy {m.accuracy:.3f}"
            out.print(f"  {m.name}@production → version {m.version} ({note})")
        out.print(
            f"\nregistry: {settings.resolved_database_url}\n\ntry, once the server is up:\n"
            f"{curl_examples(f'http://{settings.host}:{settings.port}')}\n",
            highlight=False,
            soft_wrap=True,
        )

    run(body)
    if serve_after:
        serve(host=None, port=None, load=True)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
