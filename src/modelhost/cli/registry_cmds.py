"""Registry commands: ``models``, ``versions`` and ``aliases``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from modelhost.cli.common import JsonOpt, kv, out, print_json, registry, run


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
    as_json: JsonOpt = False,
) -> None:
    """Register PATH as a new immutable version of model NAME."""

    def body() -> None:
        reg = registry()
        info = reg.register_version(
            name,
            path,
            format=format,
            convert_onnx=convert_onnx,
            description=description,
            metrics=kv(metric, "metric"),
            params=kv(param, "param"),
            tags=kv(tag, "tag"),
            lineage=kv(lineage, "lineage"),
            task=task,
            actor="cli",
        )
        if reference is not None:
            data, features = load_table(reference)
            reg.set_reference(name, info.version, data, features=features)
        if alias:
            reg.set_alias(name, alias, info.version, actor="cli", force=force)
        if as_json:
            print_json(info.to_dict())
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
        models = registry().list_models()
        if as_json:
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
    run(lambda: print_json(registry().get_model(name).to_dict()))


# --- versions ---------------------------------------------------------------------------------------


@versions_app.command("list")
def versions_list(name: str, as_json: JsonOpt = False) -> None:
    """List the versions of NAME."""

    def body() -> None:
        versions = registry().list_versions(name)
        if as_json:
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
def versions_show(name: str, version: str) -> None:
    """Show one version: signature, metrics, params, lineage."""
    run(lambda: print_json(registry().get_version(name, version).to_dict()))


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
        info = registry().set_alias(
            name, alias, version, actor="cli", reason=reason, force=force, protect=protect
        )
        out.print(f"{name}@{alias} → version {info.version}" + (" (protected)" if info.protected else ""))

    run(body)


@aliases_app.command("list")
def aliases_list(name: str, as_json: JsonOpt = False) -> None:
    """List the aliases of NAME."""

    def body() -> None:
        aliases = registry().list_aliases(name)
        if as_json:
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
) -> None:
    """Delete ALIAS of NAME."""

    def body() -> None:
        registry().delete_alias(name, alias, actor="cli", force=force)
        out.print(f"deleted {name}@{alias}")

    run(body)


@aliases_app.command("history")
def aliases_history(name: str, alias: str, as_json: JsonOpt = False) -> None:
    """Show every move of ALIAS: when, who, from which version to which."""

    def body() -> None:
        events = registry().alias_history(name, alias)
        if as_json:
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
