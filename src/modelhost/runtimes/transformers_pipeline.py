"""Bring-your-own transformers models: a local model directory (config.json, *.safetensors,
tokenizer/processor files) served with ``transformers.pipeline`` for its task.

The task comes from config.json's ``architectures`` (or is given at registration). Each task has an
OIP v2 signature over BYTES inputs (text, encoded images, encoded audio); rows of a batch go through
one pipeline call. Causal LMs stay with the LLM runtime (continuous batching, streaming). Seq2seq
tasks (summarization, translation, text2text-generation) and feature-extraction call the model
directly: transformers 5 has no pipelines for the first, and its feature-extraction pipeline gives
token states, not one embedding per text.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.config import Settings
from modelhost.errors import InvalidInput, UnsupportedFormat
from modelhost.runtimes.base import PARAMETERS_INPUT, Runtime, Signature, TensorSpec
from modelhost.runtimes.media import SAMPLE_RATE, decode_audio, decode_image, element_bytes
from modelhost.runtimes.whisper import Transcript

TEXT_CLASSIFICATION = "text-classification"
TOKEN_CLASSIFICATION = "token-classification"
IMAGE_CLASSIFICATION = "image-classification"
AUDIO_CLASSIFICATION = "audio-classification"
SPEECH_RECOGNITION = "automatic-speech-recognition"
FEATURE_EXTRACTION = "feature-extraction"
SUMMARIZATION = "summarization"
TRANSLATION = "translation"
TEXT2TEXT = "text2text-generation"
SEQ2SEQ_TASKS = (SUMMARIZATION, TRANSLATION, TEXT2TEXT)
CLASSIFICATION_TASKS = (TEXT_CLASSIFICATION, IMAGE_CLASSIFICATION, AUDIO_CLASSIFICATION)
PIPELINE_TASKS = (
    TEXT_CLASSIFICATION,
    TOKEN_CLASSIFICATION,
    IMAGE_CLASSIFICATION,
    AUDIO_CLASSIFICATION,
    SPEECH_RECOGNITION,
    FEATURE_EXTRACTION,
    *SEQ2SEQ_TASKS,
)
# Tasks that mean "the LLM runtime" when given at registration.
LLM_TASKS = ("text-generation",)
_ALIASES = {"sentiment-analysis": TEXT_CLASSIFICATION, "ner": TOKEN_CLASSIFICATION, "asr": SPEECH_RECOGNITION}
# ...ForSequenceClassification of these model types classify audio, not text.
_AUDIO_MODEL_TYPES = {"wav2vec2", "wav2vec2-bert", "wav2vec2-conformer", "hubert", "wavlm", "data2vec-audio",
                      "unispeech", "unispeech-sat", "sew", "sew-d", "whisper", "audio-spectrogram-transformer"}  # fmt: skip
_TRANSLATION_MODEL_TYPES = {"marian", "m2m_100", "nllb-moe", "fsmt", "mbart"}
_SUMMARIZATION_MODEL_TYPES = {"pegasus", "pegasus_x", "led", "bigbird_pegasus"}
MAX_TEXT_CHARS = 20_000
DEFAULT_MAX_NEW_TOKENS = 128

_INPUT = {IMAGE_CLASSIFICATION: "image", AUDIO_CLASSIFICATION: "audio", SPEECH_RECOGNITION: "audio"}
_OUTPUT = {SUMMARIZATION: "summary", TRANSLATION: "translation", TEXT2TEXT: "generated_text"}


def normalise_task(task: str) -> str:
    task = task.strip().lower()
    return _ALIASES.get(task, task)


def _seq2seq_task(config: dict[str, Any]) -> str:
    model_type = str(config.get("model_type", ""))
    params = set(config.get("task_specific_params") or {})
    translations = {p for p in params if p.startswith("translation")}
    if model_type in _TRANSLATION_MODEL_TYPES or (translations and translations == params):
        return TRANSLATION
    if model_type in _SUMMARIZATION_MODEL_TYPES or params == {SUMMARIZATION}:
        return SUMMARIZATION
    return TEXT2TEXT


def infer_task(config: dict[str, Any], name: str) -> str | None:
    """The pipeline task of a transformers model from its config.json; None for a causal LM (the
    LLM runtime serves those). UnsupportedFormat when the architecture does not tell."""
    archs = [str(a) for a in config.get("architectures") or []]
    model_type = str(config.get("model_type", ""))
    for arch in archs:
        if arch.endswith("ForCausalLM"):
            return None
        if arch.endswith(("ForCTC", "ForSpeechSeq2Seq")) or arch == "WhisperForConditionalGeneration":
            return SPEECH_RECOGNITION
        if arch.endswith("ForAudioClassification") or (
            arch.endswith("ForSequenceClassification") and model_type in _AUDIO_MODEL_TYPES
        ):
            return AUDIO_CLASSIFICATION
        if arch.endswith("ForSequenceClassification"):
            return TEXT_CLASSIFICATION
        if arch.endswith("ForTokenClassification"):
            return TOKEN_CLASSIFICATION
        if arch.endswith(("ForImageClassification", "ForImageClassificationWithTeacher")):
            return IMAGE_CLASSIFICATION
        if config.get("is_encoder_decoder") and arch.endswith(("ForConditionalGeneration", "MTModel")):
            return _seq2seq_task(config)
        if arch.endswith("Model") and "For" not in arch and not config.get("is_encoder_decoder"):
            return FEATURE_EXTRACTION  # a bare encoder (BertModel, XLMRobertaModel, ...)
    raise UnsupportedFormat(
        f"cannot tell the task of {name} from its config.json architectures "
        f"({', '.join(archs) or 'none'}); register it with a task: {', '.join(PIPELINE_TASKS)}"
    )


def wants_pipeline(path: Path, task: str | None) -> bool:
    """Whether a transformers directory is served by this runtime rather than the LLM runtime."""
    if task:
        return normalise_task(task) not in LLM_TASKS
    config = _config(path)
    return infer_task(config, path.name) is not None


def _config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise UnsupportedFormat(f"{path.name}/config.json is not readable JSON: {exc}") from None
    if not isinstance(config, dict):
        raise UnsupportedFormat(f"{path.name}/config.json is not a JSON object")
    return config


def _labels(config: dict[str, Any]) -> list[str]:
    id2label = config.get("id2label") or {}
    try:
        return [str(id2label[k]) for k in sorted(id2label, key=int)]
    except (TypeError, ValueError):
        return [str(v) for v in id2label.values()]


def _translation_pairs(config: dict[str, Any]) -> list[str]:
    """Language pairs a model names in task_specific_params (``translation_en_to_de`` -> ``en-de``)."""
    pairs = []
    for key in config.get("task_specific_params") or {}:
        parts = str(key).split("_")
        if len(parts) == 4 and parts[0] == TRANSLATION and parts[2] == "to":
            pairs.append(f"{parts[1]}-{parts[3]}")
    return sorted(pairs)


def _signature(task: str, config: dict[str, Any], settings: Settings) -> Signature:
    archs = [str(a) for a in config.get("architectures") or []]
    extra: dict[str, Any] = {"kind": "transformers-pipeline", "task": task, "architecture": archs[:1]}
    inputs = (TensorSpec(_INPUT.get(task, "text"), "BYTES", (-1,)),)
    params: dict[str, Any] = {}
    outputs: tuple[TensorSpec, ...]
    if task in CLASSIFICATION_TASKS:
        labels = _labels(config)
        n = max(1, len(labels))
        k = min(settings.task_top_k, n)
        outputs = (
            TensorSpec("label", "BYTES", (-1, -1)),
            TensorSpec("score", "FP32", (-1, -1)),
            TensorSpec("top_label", "BYTES", (-1,)),
        )
        extra.update(labels=labels, top_k=k)
        params["top_k"] = {"type": "integer", "minimum": 1, "maximum": n, "description": "labels per row"}
    elif task == TOKEN_CLASSIFICATION:
        outputs = (TensorSpec("entities", "BYTES", (-1,)),)
        extra["labels"] = _labels(config)
    elif task == SPEECH_RECOGNITION:
        outputs = (TensorSpec("text", "BYTES", (-1,)),)
        extra["serves"] = ["whisper"]  # usable by /v1/audio/transcriptions
    elif task == FEATURE_EXTRACTION:
        dim = int(config.get("hidden_size") or config.get("d_model") or -1)
        outputs = (TensorSpec("embedding", "FP32", (-1, dim)),)
        extra.update(dimensions=dim, serves=["embeddings"])  # /v1/embeddings, /v1/classifications
        params["normalize"] = {"type": "boolean", "description": "scale each embedding to unit length"}
    else:
        outputs = (TensorSpec(_OUTPUT[task], "BYTES", (-1,)),)
        params["max_new_tokens"] = {"type": "integer", "minimum": 1, "maximum": 1024}
        params["num_beams"] = {"type": "integer", "minimum": 1, "maximum": 8}
        if task == TRANSLATION:
            extra.update(pairs=_translation_pairs(config), serves=["translation"])
            params["src_lang"] = {"type": "string", "description": "source language code"}
            params["tgt_lang"] = {"type": "string", "description": "target language code"}
    extra["parameters"] = params
    return Signature(inputs=inputs, outputs=outputs, extra=extra)


def _texts(column: np.ndarray, name: str = "text") -> list[str]:
    texts = []
    for i, value in enumerate(column.reshape(-1)):
        try:
            text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError:
            raise InvalidInput(f"{name}[{i}] is not valid UTF-8", param=name) from None
        if not text.strip():
            raise InvalidInput(f"{name}[{i}] is empty", param=name)
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidInput(f"{name}[{i}] has {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
        texts.append(text)
    return texts


def _parameters(inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    column = inputs.get(PARAMETERS_INPUT)
    if column is None or column.size == 0:
        return {}
    distinct = set(column.reshape(-1).tolist())
    if len(distinct) != 1:  # the batcher never mixes them; a direct caller might
        raise InvalidInput("rows of one call must share their parameters")
    params: dict[str, Any] = json.loads(str(distinct.pop()))
    return params


class TransformersPipelineRuntime(Runtime):
    name = "transformers-pipeline"
    # No format of its own: registration picks it for transformers directories that are not causal
    # LMs, or that are given a pipeline task (runtimes.runtime_for).
    formats = ()

    @classmethod
    def inspect(cls, path: Path, settings: Settings) -> Signature:
        return cls.inspect_task(path, settings, None)

    @classmethod
    def inspect_task(cls, path: Path, settings: Settings, task: str | None) -> Signature:
        """The signature for ``task`` (inferred from config.json when None)."""
        config = _config(path)
        if task:
            task = normalise_task(task)
            if task not in PIPELINE_TASKS:
                raise InvalidInput(
                    f"unknown task '{task}'; transformers models are served for {', '.join(PIPELINE_TASKS)} "
                    "(and text-generation by the LLM runtime)",
                    param="task",
                )
        else:
            task = infer_task(config, path.name)
            if task is None:
                raise UnsupportedFormat(f"{path.name} is a causal LM; the LLM runtime serves it")
        return _signature(task, config, settings)

    # --- loading ----------------------------------------------------------------------------------

    def load(self) -> None:
        import torch

        self.task = str(self.signature.extra["task"])
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self._lock = threading.Lock()  # models and tokenizers are not safe to call from two threads
        self.calls = 0  # model calls made, each for a whole batch (tests and benchmarks read it)
        self.top_k = int(self.signature.extra.get("top_k", 1))
        self.batch_size = self.settings.pipeline_batch_size
        common = {"local_files_only": True, "trust_remote_code": False}
        if self.task in SEQ2SEQ_TASKS or self.task == FEATURE_EXTRACTION:
            from transformers import AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

            self.tokenizer: Any = AutoTokenizer.from_pretrained(str(self.path), **common)
            auto: Any = AutoModelForSeq2SeqLM if self.task in SEQ2SEQ_TASKS else AutoModel
            self.net = auto.from_pretrained(str(self.path), **common).to(self.device).eval()
            self.config: dict[str, Any] = self.net.config.to_dict()
            self.max_tokens = int(self.config.get("max_position_embeddings") or 512)
            self.pipe: Any = None
        else:
            import transformers

            pipeline: Any = transformers.pipeline  # typed per literal task; ours is a runtime string
            # A local directory resolves every file locally (no hub look-up); local_files_only cannot
            # be passed here: some pipelines refuse it as an unknown call parameter.
            self.pipe = pipeline(self.task, model=str(self.path), device=self.device, trust_remote_code=False)
            self.tokenizer = self.pipe.tokenizer
            self.config = self.pipe.model.config.to_dict()
        self._cap_tokenizer_length()
        # /v1/embeddings decodes token-id inputs with ``runtime.model.tokenizer``
        self.model = self

    def _cap_tokenizer_length(self) -> None:
        """Truncate at the model's position limit: a tokenizer saved without ``model_max_length``
        would pass a long text whole and the forward pass would fail."""
        positions = self.config.get("max_position_embeddings")
        tokenizer = self.tokenizer
        if tokenizer is None or not isinstance(positions, int) or positions <= 0:
            return
        if getattr(tokenizer, "model_max_length", 0) > positions:
            tokenizer.model_max_length = positions
        self.max_tokens = min(positions, int(tokenizer.model_max_length))

    def unload(self) -> None:
        self.pipe = None
        self.__dict__.pop("net", None)

    # --- OIP v2 -----------------------------------------------------------------------------------

    def predict(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        params = _parameters(inputs)
        column = inputs[self.signature.inputs[0].name]
        rows = column.reshape(-1).shape[0]
        if self.task in CLASSIFICATION_TASKS:
            k = int(params.get("top_k", self.top_k))
            if self.task == TEXT_CLASSIFICATION:
                found = self._run(_texts(column), top_k=k, truncation=True)
            elif self.task == IMAGE_CLASSIFICATION:
                images = [
                    decode_image(element_bytes(x, f"image[{i}]"), f"image[{i}]")
                    for i, x in enumerate(column.reshape(-1))
                ]
                found = self._run(images, top_k=k)
            else:
                found = self._run(self._audio(column), top_k=k)
            return self._top_k(found, rows, k)
        if self.task == TOKEN_CLASSIFICATION:
            found = self._run(_texts(column), aggregation_strategy="simple")
            return {"entities": _objects([json.dumps(_entities(r)) for r in found])}
        if self.task == SPEECH_RECOGNITION:
            return {"text": _objects([str(r["text"]).strip() for r in self._run(self._audio(column))])}
        if self.task == FEATURE_EXTRACTION:
            return {"embedding": self.embed(_texts(column), normalize=bool(params.get("normalize", False)))}
        texts = self.generate(_texts(column), params)
        return {_OUTPUT[self.task]: _objects(texts)}

    def _run(self, items: list[Any], **kwargs: Any) -> list[Any]:
        with self._lock:
            self.calls += 1
            result = self.pipe(items, batch_size=min(len(items), self.batch_size), **kwargs)
        # a list in gives one result per item out
        if not isinstance(result, list) or len(result) != len(items):
            raise RuntimeError(f"the {self.task} pipeline answered {len(items)} inputs with {type(result)}")
        return result

    def _audio(self, column: np.ndarray) -> list[dict[str, Any]]:
        return [
            {
                "raw": decode_audio(element_bytes(x, f"audio[{i}]"), f"audio[{i}]"),
                "sampling_rate": SAMPLE_RATE,
            }
            for i, x in enumerate(column.reshape(-1))
        ]

    def _top_k(self, found: list[Any], rows: int, k: int) -> dict[str, np.ndarray]:
        labels = np.empty((rows, k), dtype=object)
        scores = np.zeros((rows, k), dtype=np.float32)
        for i, result in enumerate(found):
            ranked = result if isinstance(result, list) else [result]
            for j, item in enumerate(ranked[:k]):
                labels[i, j], scores[i, j] = str(item["label"]), float(item["score"])
        return {"label": labels, "score": scores, "top_label": labels[:, 0].copy()}

    # --- feature extraction: mean pooling over the attention mask ---------------------------------

    def embed(self, texts: Sequence[str], normalize: bool = False) -> np.ndarray:
        """One embedding per text: the mean of its token states (padding left out)."""
        import torch

        chunks = []
        with self._lock, torch.inference_mode():
            self.calls += 1
            for start in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(
                    list(texts[start : start + self.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_tokens,
                    return_tensors="pt",
                ).to(self.device)
                states = self.net(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                if normalize:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                chunks.append(pooled.float().cpu().numpy())
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def embed_counted(self, texts: Sequence[str], batch_size: int = 32) -> tuple[np.ndarray, list[int]]:
        """``/v1/embeddings``: the embeddings and the tokens each text used (as EmbeddingsRuntime)."""
        return self.embed(texts), self.count_tokens(texts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text uses (special tokens included, truncated at the model's limit)."""
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_tokens)
        return [len(ids) for ids in encoded["input_ids"]]

    # --- seq2seq generation -----------------------------------------------------------------------

    def generate(self, texts: Sequence[str], params: dict[str, Any]) -> list[str]:
        """Summaries, translations or generated texts, one ``generate`` call per batch."""
        import torch

        task_params = self.config.get("task_specific_params") or {}
        key = self.task
        src, tgt = params.get("src_lang"), params.get("tgt_lang")
        gen: dict[str, Any] = {
            "max_new_tokens": int(params.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)),
            "num_beams": int(params.get("num_beams", 1)),
        }
        if self.task == TRANSLATION:
            pairs = self.signature.extra.get("pairs") or []
            if src and tgt and pairs:
                key = f"translation_{self.check_pair(src, tgt).replace('-', '_to_')}"
            elif pairs:
                key = f"translation_{pairs[0].replace('-', '_to_')}"
            self._set_languages(src, tgt, gen)
        prefix = str((task_params.get(key) or {}).get("prefix") or "")
        with self._lock, torch.inference_mode():
            self.calls += 1
            out: list[str] = []
            for start in range(0, len(texts), self.batch_size):
                chunk = [prefix + t for t in texts[start : start + self.batch_size]]
                enc = self.tokenizer(
                    chunk, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
                ).to(self.device)
                ids = self.net.generate(**enc, **gen)
                out += [s.strip() for s in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return out

    def _set_languages(self, src: str | None, tgt: str | None, gen: dict[str, Any]) -> None:
        """Multilingual tokenizers (M2M100, NLLB, mBART) take language codes: the source sets the
        tokenizer's prefix, the target is forced as the first generated token."""
        if src is not None:
            if not hasattr(self.tokenizer, "src_lang") and not self.signature.extra.get("pairs"):
                raise InvalidInput("this model takes no source language (src_lang)", param="src_lang")
            if hasattr(self.tokenizer, "src_lang"):
                self.tokenizer.src_lang = src
        if tgt is not None and hasattr(self.tokenizer, "src_lang"):
            getter = getattr(self.tokenizer, "get_lang_id", None)
            token = getter(tgt) if getter else self.tokenizer.convert_tokens_to_ids(tgt)
            if token is None or token == self.tokenizer.unk_token_id:
                raise InvalidInput(f"unknown target language '{tgt}' for this model", param="tgt_lang")
            gen["forced_bos_token_id"] = int(token)

    # --- task-route capabilities ------------------------------------------------------------------

    def check_pair(self, source: str, target: str) -> str:
        """``/v1/translations``: the pair when the model names its pairs; any pair otherwise (a
        multilingual model checks the codes when translating)."""
        pair = f"{source.strip().lower()}-{target.strip().lower()}"
        pairs = self.signature.extra.get("pairs") or []
        if pairs and pair not in pairs:
            raise InvalidInput(
                f"unknown language pair '{pair}'; this model translates {', '.join(pairs)}", param="target"
            )
        return pair

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[str]:
        """``/v1/translations``: translate each text from ``source`` to ``target``."""
        params = {"src_lang": source.strip(), "tgt_lang": target.strip()}
        return self.generate(_texts(_objects(list(texts))), params)

    @staticmethod
    def check_texts(texts: Sequence[str]) -> None:
        """``/v1/translations``: the same limits as the Bergamot runtime."""
        from modelhost.runtimes.translation import TranslationRuntime

        TranslationRuntime.check_texts(texts)

    def predict_pair(
        self, inputs: dict[str, np.ndarray], outputs: Sequence[str], pair: str
    ) -> dict[str, np.ndarray]:
        """The batched call of ``/v1/translations`` (requests for one pair share a batch)."""
        texts = [x.decode() if isinstance(x, bytes) else str(x) for x in inputs["text"].reshape(-1)]
        source, target = pair.split("-", 1)
        return {"translation": _objects(self.translate(texts, source, target))}

    @staticmethod
    def check_language(language: str | None) -> str | None:
        """``/v1/audio/transcriptions``: a pipeline speech model takes no language (kept for the
        response only)."""
        return (language or "").strip().lower() or None

    def predict_transcripts(
        self, inputs: dict[str, np.ndarray], outputs: Sequence[str], language: str | None, detailed: bool
    ) -> dict[str, np.ndarray]:
        """The batched call of ``/v1/audio/transcriptions``: one Transcript per clip, no segments."""
        items = inputs["audio"].reshape(-1)
        out = np.empty(len(items), dtype=object)
        out[:] = [self.transcribe(element_bytes(x, f"audio[{i}]"), language) for i, x in enumerate(items)]
        return {"transcript": out}

    def transcribe(self, audio: bytes, language: str | None = None) -> Transcript:
        """``/v1/audio/transcriptions``: the text of one clip (no segments or language detection)."""
        samples = decode_audio(audio)
        text = str(self._run([{"raw": samples, "sampling_rate": SAMPLE_RATE}])[0]["text"]).strip()
        return Transcript(
            text=text, language=language or "", duration=len(samples) / SAMPLE_RATE, segments=()
        )

    def summarize(self, text: str, max_new_tokens: int) -> str:
        """``/v1/summaries`` (abstractive) with a summarization model."""
        return self.generate(_texts(_objects([text])), {"max_new_tokens": max_new_tokens})[0]


def _objects(values: list[str]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _entities(found: Any) -> list[dict[str, Any]]:
    return [
        {
            "entity": str(e.get("entity_group", e.get("entity", ""))),
            "score": round(float(e["score"]), 6),
            "word": str(e.get("word", "")),
            "start": None if e.get("start") is None else int(e["start"]),
            "end": None if e.get("end") is None else int(e["end"]),
        }
        for e in (found or [])
    ]
