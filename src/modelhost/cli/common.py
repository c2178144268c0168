"""Shared pieces of the CLI: consoles, settings, error handling, KEY=VALUE parsing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from modelhost.config import Settings
from modelhost.errors import InvalidInput, ModelhostError

if TYPE_CHECKING:
    from modelhost.registry import Registry

out = Console()
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys) instead of a table.")]
# Set by the global ``modelhost --json`` option for the command that follows it.
_global_json = False


def set_global_json(value: bool) -> None:
    global _global_json
    _global_json = value


def json_mode(as_json: bool = False) -> bool:
    """Whether to print JSON: the command's own ``--json`` or the global ``modelhost --json``."""
    return as_json or _global_json


@contextmanager
def working(message: str) -> Iterator[None]:
    """A spinner on stderr while long work runs (none in JSON mode, so stdout stays parseable)."""
    if json_mode() or not err.is_terminal:
        yield
        return
    with err.status(message):
        yield


@contextmanager
def byte_progress(description: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A transfer bar on stderr; yields ``update(done, total)`` for e.g. ``Client.register(progress=)``."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=err, disable=not enabled or json_mode(), transient=True) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic ValidationError: a bad MODELHOST_* variable
        raise InvalidInput(f"invalid configuration in MODELHOST_* environment variables: {exc}") from exc


def registry() -> Registry:
    from modelhost.registry import Registry

    return Registry(settings())


def run(fn: Callable[[], T]) -> T:
    """Run a command body, turning modelhost errors into a message and exit code 1."""
    try:
        return fn()
    except ModelhostError as exc:
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        raise typer.Exit(1) from None


def kv(pairs: list[str] | None, what: str) -> dict[str, Any]:
    """Parse repeated KEY=VALUE options; values are JSON when they parse, else strings."""
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


def print_json(value: Any) -> None:
    """Machine-readable output: the same keys as the REST API's JSON for the same data."""
    out.print_json(json.dumps(value, default=str))
