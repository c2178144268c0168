"""``modelhost demo``: train and register the demo models, optionally serve them."""

from __future__ import annotations

from typing import Annotated

import typer

from modelhost.cli.common import JsonOpt, json_mode, out, print_json, registry, run, settings, working
from modelhost.cli.serve import serve

# --- demo --------------------------------------------------------------------------------------------


def demo(
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the server afterwards.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train iris and digits classifiers and register SmolLM2, MiniLM, Whisper, Bergamot and
    EfficientNet (alias 'production'), print curl examples."""
    from modelhost.demo import curl_examples, openai_example, register_demo_llms, register_demo_models
    from modelhost.demo_tasks import register_demo_tasks, tasks_example

    def body() -> None:
        s = settings()
        with working("training and registering demo models…"):
            reg = registry()
            models = register_demo_models(reg)
        with working("registering SmolLM2 and MiniLM (the GGUF is converted once, then cached)…"):
            models += register_demo_llms(reg)
        with working("registering Whisper, Bergamot and EfficientNet (converted to ONNX once)…"):
            models += register_demo_tasks(reg)
        if json_mode(as_json):
            print_json([{"model": m.name, "version": m.version, "skipped": m.skipped,
                         "accuracy": m.accuracy if m.accuracy == m.accuracy else None} for m in models])  # fmt: skip
            return
        for m in models:
            note = (
                "already registered"
                if m.skipped
                else (f"accuracy {m.accuracy:.3f}" if m.accuracy == m.accuracy else "registered")
            )
            out.print(f"  {m.name}@production → version {m.version} ({note})")
        base = f"http://{s.host}:{s.port}"
        out.print(
            f"\nregistry: {s.resolved_database_url}\n\ntry, once the server is up:\n"
            f"{curl_examples(base)}\n{openai_example(base)}\n{tasks_example(base)}",
            highlight=False,
            soft_wrap=True,
        )

    run(body)
    if serve_after:
        serve(host=None, port=None, load=True, grpc_port=None, grpc=True)
