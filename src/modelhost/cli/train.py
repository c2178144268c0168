"""``modelhost train``: fit small models on registered ones (a few-shot text classifier head)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelhost.cli.common import JsonOpt, json_mode, out, print_json, registry, run, working

train_app = typer.Typer(
    help="Text classifiers: a head trained on a registered embedding model.", no_args_is_help=True
)


@train_app.command("train")
def text_classifier(
    name: Annotated[str, typer.Argument(help="Name of the classifier to register (a graph).")],
    csv_path: Annotated[Path, typer.Option("--csv", help="CSV with a header: text and label columns.")],
    embedder: Annotated[str, typer.Option(help="Registered embeddings model (name, name@alias).")] = "minilm",
    text_column: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    label_column: Annotated[str, typer.Option(help="Column holding the label.")] = "label",
    as_json: JsonOpt = False,
) -> None:
    """Fit a logistic-regression head on the embedder's vectors of the CSV's texts; register it as
    NAME-head (ONNX) and NAME, a graph text -> embedding -> head served over OIP v2."""
    from modelhost.fewshot import train_text_classifier

    def body() -> None:
        with working("embedding the examples and fitting the head…"):
            result = train_text_classifier(
                registry(),
                name,
                csv_path,
                embedder,
                text_column=text_column,
                label_column=label_column,
                actor="cli",
            )
        if json_mode(as_json):
            print_json({"model": result.name, "version": result.version, "head": result.head,
                        "head_version": result.head_version, "classes": list(result.classes),
                        "train_accuracy": result.train_accuracy})  # fmt: skip
            return
        out.print(
            f"{result.name} version {result.version} (graph) → {result.head} version {result.head_version}; "
            f"classes: {', '.join(result.classes)}; training accuracy {result.train_accuracy:.3f}",
            highlight=False,
        )

    run(body)
