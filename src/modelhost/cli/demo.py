"""``modelhost demo``: train and register the demo models, optionally serve them."""

from __future__ import annotations

from typing import Annotated

import typer

from modelhost.cli.common import out, registry, run, settings
from modelhost.cli.serve import serve

# --- demo --------------------------------------------------------------------------------------------


def demo(
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the server afterwards.")
    ] = False,
) -> None:
    """Train iris and digits classifiers, register them with alias 'production', print curl examples."""
    from modelhost.demo import curl_examples, register_demo_models

    def body() -> None:
        s = settings()
        with out.status("training and registering demo models…"):
            models = register_demo_models(registry())
        for m in models:
            note = "already registered" if m.skipped else f"accuracy {m.accuracy:.3f}"
            out.print(f"  {m.name}@production → version {m.version} ({note})")
        out.print(
            f"\nregistry: {s.resolved_database_url}\n\ntry, once the server is up:\n"
            f"{curl_examples(f'http://{s.host}:{s.port}')}\n",
            highlight=False,
            soft_wrap=True,
        )

    run(body)
    if serve_after:
        serve(host=None, port=None, load=True, grpc_port=None, grpc=True)
