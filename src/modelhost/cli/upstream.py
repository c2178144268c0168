"""``modelhost upstream``: register a remote OpenAI-compatible endpoint as a model version."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from modelhost.cli.common import JsonOpt, out, print_json, registry, run, settings

upstream_app = typer.Typer(
    help="Remote OpenAI-compatible upstreams (vLLM, another modelhost) served through this gateway.",
    no_args_is_help=True,
)


@upstream_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Model name clients will use on /v1.")],
    base_url: Annotated[str, typer.Option("--base-url", help="The upstream's OpenAI base URL (…/v1).")],
    model: Annotated[str, typer.Option("--model", "-m", help="The model name the upstream knows.")],
    capability: Annotated[
        list[str] | None,
        typer.Option(
            "--capability",
            "-c",
            help="chat | completions | embeddings (repeatable; default chat, completions).",
        ),
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="Environment variable of the server that holds the upstream's key.")
    ] = None,
    api_key_stdin: Annotated[
        bool,
        typer.Option(
            "--api-key-stdin",
            help="Read the upstream's key from stdin and store it sealed with MODELHOST_ENCRYPTION_KEY.",
        ),
    ] = False,
    timeout_s: Annotated[float, typer.Option(help="Read timeout per request, seconds.")] = 300.0,
    connect_timeout_s: Annotated[float, typer.Option(help="Connect timeout, seconds.")] = 5.0,
    context_length: Annotated[int | None, typer.Option(help="The upstream model's context window.")] = None,
    description: Annotated[str, typer.Option(help="Free-text description.")] = "",
    alias: Annotated[str | None, typer.Option(help="Point this alias at the new version.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Allow moving a protected --alias.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Register the upstream as a new version of NAME (a pinned openai-upstream manifest)."""

    def body() -> None:
        from modelhost.errors import InvalidInput

        manifest: dict[str, object] = {
            "format": "openai-upstream",
            "base_url": base_url,
            "model": model,
            "capabilities": capability or ["chat", "completions"],
            "timeout_s": timeout_s,
            "connect_timeout_s": connect_timeout_s,
            "description": description,
        }
        if context_length is not None:
            manifest["context_length"] = context_length
        if api_key_env and api_key_stdin:
            raise InvalidInput("give --api-key-env or --api-key-stdin, not both")
        if api_key_env:
            manifest["api_key_env"] = api_key_env
        if api_key_stdin:
            manifest["api_key_sealed"] = _seal(sys.stdin.read().strip())
        reg = registry()
        with tempfile.TemporaryDirectory(prefix="modelhost-upstream-") as tmp:
            path = Path(tmp) / f"{name}.upstream.json"
            path.write_text(json.dumps(manifest, indent=2))
            info = reg.register_version(
                name,
                path,
                description=description,
                lineage={"source": f"upstream:{base_url}"},
                actor="cli",
            )
        if alias:
            reg.set_alias(name, alias, info.version, actor="cli", force=force)
        if as_json:
            print_json(info.to_dict())
        else:
            out.print(
                f"registered [bold]{name}[/] version {info.version}: upstream {base_url} model {model} "
                f"(sha256 {info.sha256[:12]}…)" + (f", alias {alias}" if alias else "")
            )

    run(body)


def _seal(secret: str) -> str:
    from modelhost.errors import InvalidInput
    from modelhost.gateway.crypto import cipher_from_settings

    if not secret:
        raise InvalidInput("no key on stdin")
    cipher = cipher_from_settings(settings())
    if cipher is None:
        raise InvalidInput(
            "sealing a key needs the registry's encryption key: set MODELHOST_ENCRYPTION_KEY "
            "(`modelhost encryption new-key`) or use --api-key-env"
        )
    return cipher.seal(secret)


@upstream_app.command("seal")
def seal() -> None:
    """Read a secret from stdin and print it sealed (for api_key_sealed in a hand-written manifest)."""
    run(lambda: out.print(_seal(sys.stdin.read().strip()), highlight=False, soft_wrap=True))


def register(app: typer.Typer) -> None:
    app.add_typer(upstream_app, name="upstream")
