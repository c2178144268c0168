"""Shared pieces of the CLI: consoles, settings, error handling, KEY=VALUE parsing."""

from __future__ import annotations

import json
from collections.abc import Callable
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

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


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
    out.print_json(json.dumps(value, default=str))
