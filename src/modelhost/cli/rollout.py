"""Rollout commands: ``aliases rollback``, ``deployments`` (batching, workers) and ``canary`` splits.

They write the registry; a running server applies them within MODELHOST_RESOLVE_CACHE_S, warming a new
version before it takes traffic (the admin API applies them at once).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from modelhost.cli.common import JsonOpt, json_mode, out, print_json, registry, run

deployments_app = typer.Typer(
    help="How each model is served: batching and worker processes.", no_args_is_help=True
)
canary_app = typer.Typer(help="Canary traffic splits: send a share of name@alias to another version.",
                         no_args_is_help=True)  # fmt: skip


def rollback(
    name: str,
    alias: str,
    reason: Annotated[str, typer.Option(help="Why (kept in the alias history).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Move ALIAS of NAME back to the version it served before its latest move."""

    def body() -> None:
        info = registry().rollback_alias(name, alias, actor="cli", reason=reason)
        if json_mode(as_json):
            print_json(info.to_dict())
            return
        out.print(f"{name}@{alias} rolled back → version {info.version}")

    run(body)


@deployments_app.command("show")
def deployments_show(name: str, as_json: JsonOpt = False) -> None:
    """Show the serving settings of NAME (null or "default" = the server default)."""
    run(lambda: _emit(registry().get_deployment(name).to_dict(), as_json))


def _emit(deployment: dict[str, Any], as_json: bool) -> None:
    if json_mode(as_json):
        print_json(deployment)
        return
    table = Table("model", "max batch size", "max wait ms", "workers", "canaries")
    canaries = ", ".join(
        f"{a}: {c['percent']:g} % → v{c['version']}" for a, c in deployment["canaries"].items()
    )
    table.add_row(
        deployment["model"],
        *(str(deployment[k]) if deployment[k] is not None else "default"
          for k in ("max_batch_size", "max_wait_ms", "workers")),
        canaries or "-",
    )  # fmt: skip
    out.print(table)


@deployments_app.command("set")
def deployments_set(
    name: str,
    max_batch_size: Annotated[int | None, typer.Option(help="Rows per batch (1 = no batching).")] = None,
    max_wait_ms: Annotated[
        float | None, typer.Option(help="Wait for more rows after the first (ms).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (0 = in the server process).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change how NAME is served; options left out keep their value."""

    def body() -> None:
        info = registry().set_deployment(
            name, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, workers=workers, actor="cli"
        )
        _emit(info.to_dict(), as_json)

    run(body)


@canary_app.command("set")
def canary_set(
    name: str,
    alias: str,
    version: str,
    percent: Annotated[float, typer.Argument(help="Share of the alias's traffic, 0-100.")],
    as_json: JsonOpt = False,
) -> None:
    """Send PERCENT % of NAME@ALIAS traffic to VERSION (sticky per x-modelhost-routing-key)."""

    def body() -> None:
        info = registry().set_canary(name, alias, version, percent, actor="cli")
        if json_mode(as_json):
            print_json(info.to_dict())
        else:
            out.print(f"{name}@{alias}: {percent:g} % → version {version}")

    run(body)


@canary_app.command("delete")
def canary_delete(name: str, alias: str, as_json: JsonOpt = False) -> None:
    """Stop splitting NAME@ALIAS traffic."""

    def body() -> None:
        info = registry().clear_canary(name, alias, actor="cli")
        if json_mode(as_json):
            print_json(info.to_dict())
        else:
            out.print(f"{name}@{alias}: no canary")

    run(body)


canary_app.command("clear", hidden=True)(canary_delete)  # the former name
