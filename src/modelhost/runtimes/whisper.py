"""Speech recognition: a Whisper model in CTranslate2 format, served with faster-whisper."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.config import Settings
from modelhost.errors import InvalidInput, UnsupportedFormat
from modelhost.registry.formats import CTRANSLATE2
from modelhost.runtimes.base import Runtime, Signature, TensorSpec
from modelhost.runtimes.media import SAMPLE_RATE, decode_audio, element_bytes, share_openmp_with_torch


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "text": self.text,
            "avg_logprob": round(self.avg_logprob, 4),
            "no_speech_prob": round(self.no_speech_prob, 4),
        }


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    duration: float
    segments: tuple[Segment, ...]


class WhisperRuntime(Runtime):
    name = "whisper"
    formats = (CTRANSLATE2,)
    single_thread = True
    # 16 queued 3 s clips batched as one took > 60 s on 2 busy cores (benchmarks/RESULTS.md)
    default_max_batch_size = 4

    @classmethod
    def inspect(cls, path: Path, settings: Settings) -> Signature:
        config = json.loads((path / "config.json").read_text())
        # CTranslate2 also converts translation and LLM models; only Whisper ones have these keys.
        if "alignment_heads" not in config and "suppress_ids" not in config:
            raise UnsupportedFormat(f"{path.name} is a CTranslate2 model but not a Whisper one")
        english_only = "lang_ids" not in config or not config.get("lang_ids")
        return Signature(
            inputs=(TensorSpec("audio", "BYTES", (-1,)),),
            outputs=(TensorSpec("text", "BYTES", (-1,)),),
            extra={"kind": "speech-recognition", "english_only": english_only, "sample_rate": SAMPLE_RATE},
        )

    def load(self) -> None:
        share_openmp_with_torch()  # before CTranslate2 is imported: one OpenMP runtime per process
        from faster_whisper import WhisperModel

        self.model: Any = WhisperModel(
            str(self.path),
            device="cpu",
            compute_type="int8",
            cpu_threads=self.settings.task_threads,
            num_workers=1,
            local_files_only=True,
        )
        self.english_only = not self.model.model.is_multilingual
        # One CTranslate2 model serves one request at a time per worker; requests queue here.
        self._lock = threading.Lock()

    def unload(self) -> None:
        del self.model

    def check_language(self, language: str | None) -> str | None:
        """The normalised language code (None: detect, or English for English-only models);
        InvalidInput for a code the model cannot transcribe."""
        if language is not None:
            language = language.strip().lower() or None
        if language is not None and self.english_only and language != "en":
            raise InvalidInput(
                f"model is English-only; language '{language}' is not supported", param="language"
            )
        if language is not None and language not in self._languages():
            raise InvalidInput(f"unknown language code '{language}'", param="language")
        return language

    def transcribe(self, audio: bytes | np.ndarray, language: str | None = None) -> Transcript:
        """Transcribe encoded audio bytes (any format PyAV reads) or 16 kHz float samples."""
        samples = decode_audio(audio) if isinstance(audio, bytes) else audio
        language = self.check_language(language)
        with self._lock:
            segments, info = self.model.transcribe(
                samples,
                beam_size=1,
                language=language or ("en" if self.english_only else None),
                condition_on_previous_text=False,
                vad_filter=False,
            )
            found = tuple(
                Segment(i, s.start, s.end, s.text.strip(), s.avg_logprob, s.no_speech_prob)
                for i, s in enumerate(segments)
            )
        text = " ".join(s.text for s in found if s.text)
        return Transcript(text=text, language=info.language, duration=float(info.duration), segments=found)

    def _languages(self) -> set[str]:
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        return set(_LANGUAGE_CODES)

    def transcribe_batch(self, clips: Sequence[np.ndarray]) -> list[str]:
        """Texts of several clips of at most 30 s each in one batched encoder and decoder pass
        (English-only models: the prompt needs no language detection). Greedy, no timestamps."""
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer

        frames = self.model.feature_extractor.nb_max_frames
        features = []
        for clip in clips:
            f = self.model.feature_extractor(clip)[:, :frames]
            features.append(np.pad(f, ((0, 0), (0, frames - f.shape[1]))))
        batch = np.ascontiguousarray(np.stack(features), dtype=np.float32)
        tokenizer = Tokenizer(self.model.hf_tokenizer, False, task="transcribe", language="en")
        prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        with self._lock:
            encoded = self.model.model.encode(ctranslate2.StorageView.from_array(batch), to_cpu=False)
            results = self.model.model.generate(
                encoded, [prompt] * len(clips), beam_size=1, max_length=self.model.max_length // 2
            )
        return [
            tokenizer.decode([t for t in r.sequences_ids[0] if t < tokenizer.eot]).strip() for r in results
        ]

    def transcripts(
        self, clips: Sequence[np.ndarray], language: str | None, detailed: bool
    ) -> list[Transcript]:
        """One transcript per clip: several short clips of an English-only model in one batched pass
        (text only, no segments) unless ``detailed``; otherwise one after another."""
        language = self.check_language(language)
        batchable = self.english_only and all(len(c) <= 30 * SAMPLE_RATE for c in clips)
        if len(clips) > 1 and batchable and not detailed:
            texts = self.transcribe_batch(clips)
            return [Transcript(t, "en", len(c) / SAMPLE_RATE, ()) for t, c in zip(texts, clips, strict=True)]
        return [self.transcribe(c, language) for c in clips]

    def predict_transcripts(
        self, inputs: dict[str, np.ndarray], outputs: Sequence[str], language: str | None, detailed: bool
    ) -> dict[str, np.ndarray]:
        """The batched call of /v1/audio/transcriptions: encoded clips in ``audio``, Transcript objects
        out in ``transcript`` (requests with the same language and detail share a batch)."""
        items = inputs["audio"].reshape(-1)
        clips = [decode_audio(element_bytes(x, f"audio[{i}]"), f"audio[{i}]") for i, x in enumerate(items)]
        out = np.empty(len(clips), dtype=object)
        out[:] = self.transcripts(clips, language, detailed)
        return {"transcript": out}

    def predict(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        items = inputs["audio"].reshape(-1)
        clips = [decode_audio(element_bytes(x, f"audio[{i}]"), f"audio[{i}]") for i, x in enumerate(items)]
        out = np.empty(len(clips), dtype=object)
        out[:] = [t.text for t in self.transcripts(clips, None, False)]
        return {"text": out.reshape(inputs["audio"].shape)}
