"""The ``modelhost`` command line (Typer + Rich). User mistakes print a clear message, never a traceback.

Each command group lives in its own module; this file only assembles them.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from modelhost import __version__
from modelhost.cli import (
    demo,
    gateway_cmds,
    ml,
    monitor,
    predict,
    registry_cmds,
    rollout,
    serve,
    train,
    upstream,
)
from modelhost.cli.common import out, set_global_json

app = typer.Typer(
    help="modelhost: register models and serve them over the Open Inference Protocol.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(registry_cmds.models_app, name="models")
app.add_typer(registry_cmds.versions_app, name="versions")
app.add_typer(registry_cmds.aliases_app, name="aliases")
registry_cmds.aliases_app.command("rollback")(rollout.rollback)
app.add_typer(rollout.deployments_app, name="deployments")
app.add_typer(rollout.canary_app, name="canary")
app.add_typer(train.train_app, name="text-classifier")
app.command()(serve.serve)
app.command()(serve.config)
app.command()(predict.predict)
app.command()(demo.demo)
app.command()(monitor.drift)
app.command()(monitor.status)
gateway_cmds.register(app)
ml.register(app)
upstream.register(app)


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
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print JSON (stable keys) from every command that prints data."),
    ] = False,
) -> None:
    """modelhost command line."""
    set_global_json(as_json)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
