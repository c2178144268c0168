"""Registry commands: ``models``, ``versions`` and ``aliases``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from modelhost.cli.common import (
    JsonOpt,
    byte_progress,
    json_mode,
    kv,
    out,
    print_json,
    registry,
    run,
    working,
)


def load_table(path: Path) -> tuple[Any, list[str] | None]:
    """A numeric table from a .npy file or a CSV whose first row names the columns."""
    import numpy as np

    from modelhost.errors import InvalidInput

    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False), None
        with open(path) as f:
            header = f.readline().strip().split(",")
        return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2), header
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read reference data {path}: {exc}") from None


models_app = typer.Typer(help="Registered models.", no_args_is_help=True)
versions_app = typer.Typer(help="Versions of a model.", no_args_is_help=True)
aliases_app = typer.Typer(help="Aliases (production, staging, ...) and their history.", no_args_is_help=True)


# --- models ----------------------------------------------------------------------------------------


UrlOpt = Annotated[
    str | None,
    typer.Option(help="Upload to this server's admin API instead of the local registry.", show_default=False),
]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        envvar="MODELHOST_API_KEY", help="Admin API key for --url (mh_live_...).", show_default=False
    ),
]


@models_app.command("register")
def models_register(
    path: Annotated[
        Path,
        typer.Argument(
            help="Artifact: a file (skops, ONNX, safetensors, GGUF, .keras) or a model directory."
        ),
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="Model name.")],
    format: Annotated[
        str | None, typer.Option(help="Expected format (skops|onnx); detected from content.")
    ] = None,
    convert_onnx: Annotated[
        bool, typer.Option("--convert-onnx", help="Convert a skops model to ONNX.")
    ] = False,
    description: Annotated[str, typer.Option(help="Free-text description.")] = "",
    task: Annotated[
        str | None,
        typer.Option(
            help="The model's task; for a transformers directory its pipeline (text-classification, "
            "summarization, ...), inferred from config.json when not given."
        ),
    ] = None,
    metric: Annotated[list[str] | None, typer.Option(help="KEY=VALUE metric (repeatable).")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE training parameter (repeatable).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE tag (repeatable).")] = None,
    lineage: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE lineage (data_hash, code_version...).")
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(help="Reference data for drift: a CSV (header row) or .npy of training inputs."),
    ] = None,
    alias: Annotated[str | None, typer.Option(help="Point this alias at the new version.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Allow moving a protected --alias.")] = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register PATH as a new immutable version of model NAME (uploaded with a progress bar when
    --url names a server)."""

    def body() -> None:
        fields: dict[str, Any] = {
            "format": format,
            "convert_onnx": convert_onnx,
            "description": description,
            "metrics": kv(metric, "metric"),
            "params": kv(param, "param"),
            "tags": kv(tag, "tag"),
            "lineage": kv(lineage, "lineage"),
            "task": task,
        }
        if url:
            record = _register_remote(url, api_key, name, path, fields, reference, alias, force)
        else:
            record = _register_local(name, path, fields, reference, alias, force)
        if json_mode(as_json):
            print_json(record)
        else:
            out.print(
                f"registered [bold]{name}[/] version {record['version']} ({record['format']}, "
                f"sha256 {record['sha256'][:12]}…)" + (f", alias {alias}" if alias else "")
            )

    run(body)


def _register_local(
    name: str, path: Path, fields: dict[str, Any], reference: Path | None, alias: str | None, force: bool
) -> dict[str, Any]:
    reg = registry()
    with working(f"checking, hashing and storing {path.name}…"):
        info = reg.register_version(name, path, actor="cli", **fields)
    if reference is not None:
        data, features = load_table(reference)
        reg.set_reference(name, info.version, data, features=features)
    if alias:
        reg.set_alias(name, alias, info.version, actor="cli", force=force)
    return info.to_dict()


def _register_remote(
    url: str,
    api_key: str | None,
    name: str,
    path: Path,
    fields: dict[str, Any],
    reference: Path | None,
    alias: str | None,
    force: bool,
) -> dict[str, Any]:
    from modelhost.errors import InvalidInput
    from modelhost.sdk import Client

    if reference is not None:
        raise InvalidInput("--reference works on the local registry only (leave out --url)")
    with Client(url, api_key=api_key, timeout=600) as client:
        with byte_progress(f"uploading {path.name}") as update:
            record = client.register(name, path, progress=update, **fields)
        if alias:
            client.set_alias(name, alias, record.version, force=force)
        return record.to_dict()


def show_record(record: dict[str, Any]) -> None:
    """One record as a two-column table (nested values as compact JSON)."""
    table = Table("field", "value", show_header=False)
    for key, value in record.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        table.add_row(key, text)
    out.print(table)


@models_app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """List registered models."""

    def body() -> None:
        models = registry().list_models()
        if json_mode(as_json):
            print_json([m.to_dict() for m in models])
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
    run(lambda: _emit(registry().get_model(name).to_dict(), as_json))


def _emit(record: dict[str, Any], as_json: bool) -> None:
    print_json(record) if json_mode(as_json) else show_record(record)


# --- versions ---------------------------------------------------------------------------------------


@versions_app.command("list")
def versions_list(name: str, as_json: JsonOpt = False) -> None:
    """List the versions of NAME."""

    def body() -> None:
        versions = registry().list_versions(name)
        if json_mode(as_json):
            print_json([v.to_dict() for v in versions])
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
def versions_show(name: str, version: str, as_json: JsonOpt = False) -> None:
    """Show one version: signature, metrics, params, lineage."""
    run(lambda: _emit(registry().get_version(name, version).to_dict(), as_json))


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
    as_json: JsonOpt = False,
) -> None:
    """Point ALIAS of NAME at VERSION (recorded in the alias history)."""

    def body() -> None:
        info = registry().set_alias(
            name, alias, version, actor="cli", reason=reason, force=force, protect=protect
        )
        if json_mode(as_json):
            print_json(info.to_dict())
            return
        out.print(f"{name}@{alias} → version {info.version}" + (" (protected)" if info.protected else ""))

    run(body)


@aliases_app.command("list")
def aliases_list(name: str, as_json: JsonOpt = False) -> None:
    """List the aliases of NAME."""

    def body() -> None:
        aliases = registry().list_aliases(name)
        if json_mode(as_json):
            print_json([a.to_dict() for a in aliases])
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
    as_json: JsonOpt = False,
) -> None:
    """Delete ALIAS of NAME."""

    def body() -> None:
        registry().delete_alias(name, alias, actor="cli", force=force)
        if json_mode(as_json):
            print_json({"model": name, "alias": alias, "deleted": True})
        else:
            out.print(f"deleted {name}@{alias}")

    run(body)


@aliases_app.command("history")
def aliases_history(name: str, alias: str, as_json: JsonOpt = False) -> None:
    """Show every move of ALIAS: when, who, from which version to which."""

    def body() -> None:
        events = registry().alias_history(name, alias)
        if json_mode(as_json):
            print_json([e.to_dict() for e in events])
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
