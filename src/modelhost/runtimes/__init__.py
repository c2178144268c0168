"""Runtimes by format. A new framework is one new module plus one line here."""

from __future__ import annotations

from modelhost.errors import UnsupportedFormat
from modelhost.runtimes.base import Runtime, Signature, TensorSpec
from modelhost.runtimes.embeddings import EmbeddingsRuntime
from modelhost.runtimes.graph import GraphRuntime
from modelhost.runtimes.keras import KerasRuntime
from modelhost.runtimes.llm import LLMRuntime
from modelhost.runtimes.onnx import OnnxRuntime
from modelhost.runtimes.sklearn import SklearnRuntime
from modelhost.runtimes.torch import TorchRuntime
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


def runtime_by_name(name: str) -> type[Runtime]:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise UnsupportedFormat(f"unknown runtime '{name}'; known: {', '.join(sorted(RUNTIMES))}") from None


__all__ = ["RUNTIMES", "Runtime", "Signature", "TensorSpec", "runtime_by_name", "runtime_for_format"]
