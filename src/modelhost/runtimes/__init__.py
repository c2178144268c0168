"""Runtimes by format. A new framework is one new module plus one line here."""

from __future__ import annotations

from pathlib import Path

from modelhost.errors import UnsupportedFormat
from modelhost.runtimes.base import Runtime, Signature, TensorSpec
from modelhost.runtimes.embeddings import EmbeddingsRuntime
from modelhost.runtimes.graph import GraphRuntime
from modelhost.runtimes.keras import KerasRuntime
from modelhost.runtimes.llm import LLMRuntime
from modelhost.runtimes.onnx import OnnxRuntime
from modelhost.runtimes.sklearn import SklearnRuntime
from modelhost.runtimes.torch import TorchRuntime
from modelhost.runtimes.transformers_pipeline import (
    PIPELINE_TASKS,
    TransformersPipelineRuntime,
    normalise_task,
    wants_pipeline,
)
from modelhost.runtimes.translation import TranslationRuntime
from modelhost.runtimes.upstream import UpstreamRuntime
from modelhost.runtimes.vision import ImageClassifierRuntime
from modelhost.runtimes.whisper import WhisperRuntime

RUNTIMES: dict[str, type[Runtime]] = {
    r.name: r
    for r in (
        SklearnRuntime,
        OnnxRuntime,
        LLMRuntime,
        EmbeddingsRuntime,
        WhisperRuntime,
        TranslationRuntime,
        ImageClassifierRuntime,
        GraphRuntime,
        TorchRuntime,
        KerasRuntime,
        TransformersPipelineRuntime,
        UpstreamRuntime,
    )
}
RUNTIME_BY_FORMAT: dict[str, type[Runtime]] = {f: r for r in RUNTIMES.values() for f in r.formats}


def runtime_for_format(fmt: str) -> type[Runtime]:
    try:
        return RUNTIME_BY_FORMAT[fmt]
    except KeyError:
        raise UnsupportedFormat(
            f"format '{fmt}' is recognised as safe but no runtime serves it yet; "
            f"served formats: {', '.join(sorted(RUNTIME_BY_FORMAT))}"
        ) from None


def runtime_for(fmt: str, path: Path, task: str | None = None) -> type[Runtime]:
    """The runtime for an artifact at registration: by format, except that a transformers directory
    goes to the transformers-pipeline runtime unless it is a causal LM (or ``task`` says
    text-generation), and a sentence-transformers directory does when a pipeline ``task`` is given."""
    from modelhost.registry.formats import SENTENCE_TRANSFORMERS, TRANSFORMERS

    if (fmt == TRANSFORMERS and wants_pipeline(path, task)) or (
        fmt == SENTENCE_TRANSFORMERS and task and normalise_task(task) in PIPELINE_TASKS
    ):
        return TransformersPipelineRuntime
    return runtime_for_format(fmt)


def runtime_by_name(name: str) -> type[Runtime]:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise UnsupportedFormat(f"unknown runtime '{name}'; known: {', '.join(sorted(RUNTIMES))}") from None


__all__ = [
    "RUNTIMES",
    "Runtime",
    "Signature",
    "TensorSpec",
    "TransformersPipelineRuntime",
    "runtime_by_name",
    "runtime_for",
    "runtime_for_format",
]
