"""Few-shot text classification: a logistic-regression head fitted on a registered embedding model's
vectors, registered as an ONNX model, plus a graph (text -> embedding -> head) that serves it as one
model over OIP v2."""

from __future__ import annotations

import csv
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelhost.errors import InvalidInput
from modelhost.registry import Registry
from modelhost.runtimes.embeddings import EmbeddingsRuntime


@dataclass(frozen=True)
class TrainedClassifier:
    name: str
    version: int
    head: str
    head_version: int
    classes: tuple[str, ...]
    train_accuracy: float


def read_examples(
    path: Path, text_column: str = "text", label_column: str = "label"
) -> tuple[list[str], list[str]]:
    """(texts, labels) from a CSV file with a header row."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc
    if not rows or text_column not in rows[0] or label_column not in rows[0]:
        raise InvalidInput(f"{path.name} needs a header with '{text_column}' and '{label_column}' columns")
    texts = [(r[text_column] or "").strip() for r in rows]
    labels = [(r[label_column] or "").strip() for r in rows]
    if any(not t for t in texts) or any(not lab for lab in labels):
        raise InvalidInput(f"{path.name} has rows with an empty text or label")
    if len(set(labels)) < 2:
        raise InvalidInput(f"{path.name} needs at least two distinct labels")
    return texts, labels


def train_text_classifier(
    registry: Registry,
    name: str,
    csv_path: Path,
    embedder: str,
    *,
    text_column: str = "text",
    label_column: str = "label",
    actor: str = "",
) -> TrainedClassifier:
    """Embed the examples with ``embedder`` (resolved to one version and pinned), fit the head,
    register ``<name>-head`` (ONNX) and ``<name>`` (the graph)."""
    from sklearn.linear_model import LogisticRegression

    texts, labels = read_examples(csv_path, text_column, label_column)
    info = registry.resolve(embedder)
    if info.runtime != EmbeddingsRuntime.name:
        raise InvalidInput(f"'{embedder}' is a {info.runtime} model; --embedder needs an embeddings model")
    runtime = EmbeddingsRuntime(registry.artifact_path(info), info.signature, registry.settings)
    runtime.load()
    try:
        vectors = runtime.embed(texts)
    finally:
        runtime.unload()
    head = LogisticRegression(max_iter=1000, C=10.0).fit(vectors.astype(np.float32), labels)
    accuracy = float(head.score(vectors, labels))
    head_name = f"{name}-head"
    with tempfile.TemporaryDirectory() as tmp:
        import skops.io as sio

        skops_path = Path(tmp) / f"{head_name}.skops"
        sio.dump(head, skops_path)
        head_v = registry.register_version(
            head_name,
            skops_path,
            convert_onnx=True,
            metrics={"train_accuracy": round(accuracy, 4)},
            params={
                "estimator": "LogisticRegression",
                "C": 10.0,
                "embedder": info.model,
                "embedder_version": info.version,
            },
            lineage={"data": str(csv_path), "examples": len(texts)},
            task="text-classification-head",
            description=f"classifier head on {info.model} v{info.version} embeddings",
            actor=actor,
        )
        graph = {
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
            "steps": [
                {"name": "embed", "model": info.model, "version": info.version, "inputs": {"text": "$text"}},
                {
                    "name": "head",
                    "model": head_name,
                    "version": head_v.version,
                    "inputs": {"input": "embed.embedding"},
                },
            ],
            "outputs": {"label": "head.label", "probabilities": "head.probabilities"},
        }
        graph_path = Path(tmp) / f"{name}.json"
        graph_path.write_text(json.dumps(graph, indent=2))
        v = registry.register_version(
            name,
            graph_path,
            task="text-classification",
            metrics={"train_accuracy": round(accuracy, 4)},
            params={"classes": [str(c) for c in head.classes_]},
            description=f"few-shot text classifier: {info.model} v{info.version} -> {head_name} v{head_v.version}",
            actor=actor,
        )
    return TrainedClassifier(
        name, v.version, head_name, head_v.version, tuple(str(c) for c in head.classes_), accuracy
    )
