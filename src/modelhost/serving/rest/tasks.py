"""Task endpoints in each ecosystem's shape, over the same DataPlane as OIP v2 (the generic path):
OpenAI-compatible speech-to-text, translation, summarization and zero-shot text classification.
Under /v1, errors have OpenAI's shape."""

from __future__ import annotations

import functools
import time
from typing import Annotated, Any, Literal, cast

import anyio
import numpy as np
from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import PlainTextResponse, Response

from modelhost.dataplane import summarize, zero_shot
from modelhost.dataplane.plane import DataPlane
from modelhost.errors import InvalidInput, ModelhostError, NotFound
from modelhost.registry import VersionInfo
from modelhost.runtimes.embeddings import EmbeddingsRuntime
from modelhost.runtimes.llm import LLMRuntime
from modelhost.runtimes.transformers_pipeline import TransformersPipelineRuntime
from modelhost.runtimes.translation import TranslationRuntime
from modelhost.runtimes.whisper import Transcript, WhisperRuntime
from modelhost.serving.deps import Plane, TaskMetered
from modelhost.serving.responses import JSONBytes
from modelhost.serving.rest.openai.routes import OpenAIErrorResponse

router = APIRouter(
    prefix="/v1",
    tags=["Tasks"],
    responses={s: {"model": OpenAIErrorResponse} for s in (400, 401, 403, 404, 413, 429, 500, 503, 504)},
)

MAX_TRANSLATION_TEXTS = 128


async def _served(plane: Plane, ref: str, kind: type[Any]) -> tuple[VersionInfo, Any]:
    try:
        return await plane.runtime_of(ref, kind)
    except ModelhostError as exc:
        if exc.param is None and (isinstance(exc, NotFound) or exc.status_code == 400):
            exc.param = "model"
        raise


async def _runtime(plane: Plane, ref: str, kind: type[Any]) -> Any:
    return (await _served(plane, ref, kind))[1]


def _objects(values: list[Any]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


@router.post(
    "/audio/transcriptions",
    summary="Speech to text (OpenAI-compatible multipart: file, model, language, response_format)",
)
async def transcriptions(
    plane: Plane,
    _usage: TaskMetered,
    file: Annotated[UploadFile, File(description="Audio in any common format (WAV, FLAC, MP3, OGG…)")],
    model: Annotated[str, Form(min_length=1)],
    language: Annotated[str | None, Form(max_length=8)] = None,
    response_format: Annotated[Literal["json", "text", "verbose_json"], Form()] = "json",
    temperature: Annotated[float, Form(ge=0.0, le=0.0, description="Only greedy decoding (0)")] = 0.0,
) -> Response:
    info, runtime = await _served(plane, model, WhisperRuntime)
    runtime = cast(WhisperRuntime, runtime)
    data = await file.read()
    if not data:
        raise InvalidInput("the uploaded file is empty", param="file")
    language = runtime.check_language(language)
    detailed = response_format == "verbose_json"
    # Through the model's adaptive batcher: concurrent requests with the same options share one
    # batched Whisper pass (and every call to the engine is made from the batcher, one batch at a time).
    result = await plane.task_predict(
        info,
        {"audio": _objects([data])},
        ["transcript"],
        call=functools.partial(runtime.predict_transcripts, language=language, detailed=detailed),
        key=("transcribe", id(runtime), language, detailed),
    )
    transcript: Transcript = result["transcript"][0]
    if response_format == "text":
        return PlainTextResponse(transcript.text + "\n")
    if response_format == "json":
        return JSONBytes({"text": transcript.text})
    return JSONBytes(
        {
            "task": "transcribe",
            "language": transcript.language,
            "duration": round(transcript.duration, 3),
            "text": transcript.text,
            "segments": [s.to_dict() for s in transcript.segments],
        }
    )


class TranslationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    source: str = Field(min_length=2, max_length=8, description="Source language code, e.g. en")
    target: str = Field(min_length=2, max_length=8, description="Target language code, e.g. pt")
    text: str | list[str] = Field(description="One text or a batch of texts")

    @field_validator("text")
    @classmethod
    def _text(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts:
            raise ValueError("text must not be an empty list")
        if len(texts) > MAX_TRANSLATION_TEXTS:
            raise ValueError(f"at most {MAX_TRANSLATION_TEXTS} texts per request")
        if any(not t.strip() for t in texts):
            raise ValueError("text must not contain empty strings")
        return value


@router.post("/translations", summary="Translate a text or a batch of texts from source to target language")
async def translations(req: TranslationRequest, plane: Plane, _usage: TaskMetered) -> JSONBytes:
    return JSONBytes(await translate(plane, req))


async def translate(plane: DataPlane, req: TranslationRequest) -> dict[str, Any]:
    """The answer of /v1/translations to a validated request (the route and ``tasks_fast`` share it)."""
    info, runtime = await _served(plane, req.model, TranslationRuntime)
    runtime = cast(TranslationRuntime, runtime)
    texts = [req.text] if isinstance(req.text, str) else req.text
    pair = runtime.check_pair(req.source, req.target)
    runtime.check_texts(texts)
    started = time.perf_counter()
    # Through the model's adaptive batcher: concurrent requests for the same pair share a batch.
    result = await plane.task_predict(
        info,
        {"text": _objects(texts)},
        ["translation"],
        call=functools.partial(runtime.predict_pair, pair=pair),
        key=("translate", id(runtime), pair),
    )
    out = [str(t) for t in result["translation"]]
    return {
        "object": "translation.list",
        "model": req.model,
        "source": req.source.lower(),
        "target": req.target.lower(),
        "data": [{"index": i, "text": t} for i, t in enumerate(out)],
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }


class SummaryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="An embeddings model (extractive) or an LLM (abstractive)")
    text: str = Field(min_length=1, max_length=200_000)
    mode: Literal["extractive", "abstractive"] = "extractive"
    sentences: int = Field(default=3, ge=1, le=50, description="Sentences to keep (extractive) or ask for")
    max_tokens: int = Field(default=128, ge=1, le=2048, description="Abstractive only: tokens to generate")
    prompt: str | None = Field(
        default=None,
        max_length=4000,
        description="Abstractive only: a template with {text} (and optionally {sentences})",
    )

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be empty")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str | None) -> str | None:
        if value is not None and "{text}" not in value:
            raise ValueError("prompt must contain {text}")
        return value


@router.post("/summaries", summary="Summarize a text: extractive (embedding centrality) or abstractive (LLM)")
async def summaries(req: SummaryRequest, plane: Plane, _usage: TaskMetered) -> JSONBytes:
    started = time.perf_counter()
    if req.mode == "extractive":
        if req.prompt is not None:
            raise InvalidInput("prompt applies to mode 'abstractive' only", param="prompt")
        embedder: EmbeddingsRuntime = await _runtime(plane, req.model, EmbeddingsRuntime)
        result = await anyio.to_thread.run_sync(summarize.extractive, embedder, req.text, req.sentences)
    elif (await plane.resolve(req.model)).signature.extra.get("task") == "summarization":
        seq2seq: TransformersPipelineRuntime = await _runtime(plane, req.model, TransformersPipelineRuntime)
        text = await anyio.to_thread.run_sync(seq2seq.summarize, req.text, req.max_tokens)
        result = summarize.Summary(text, "abstractive", (), len(summarize.split_sentences(req.text)))
    else:
        llm: LLMRuntime = await _runtime(plane, req.model, LLMRuntime)
        result = await summarize.abstractive(
            llm, req.text, req.sentences, req.max_tokens, req.prompt or summarize.DEFAULT_PROMPT
        )
    return JSONBytes(
        {
            "object": "summary",
            "model": req.model,
            "mode": result.mode,
            "summary": result.text,
            "sentence_indexes": list(result.sentence_indexes),
            "sentence_count": result.sentence_count,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }
    )


class ClassificationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="An embeddings model")
    input: str | list[str] = Field(description="One text or a batch of texts")
    labels: list[str] | dict[str, str] = Field(
        description="Label names, or label -> description (descriptions classify better)"
    )

    @field_validator("input")
    @classmethod
    def _input(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts or any(not t.strip() for t in texts):
            raise ValueError("input must hold at least one text and no empty text")
        if len(texts) > 2048:
            raise ValueError("at most 2048 texts per request")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str] | dict[str, str]) -> list[str] | dict[str, str]:
        names = list(value)
        if len(names) < 2 or len(names) > 256:
            raise ValueError("give between 2 and 256 labels")
        if len(set(names)) != len(names) or any(not n.strip() for n in names):
            raise ValueError("labels must be distinct and non-empty")
        return value


@router.post(
    "/classifications", summary="Zero-shot text classification over embeddings with label descriptions"
)
async def classifications(req: ClassificationRequest, plane: Plane, _usage: TaskMetered) -> JSONBytes:
    info, _embedder = await _served(plane, req.model, EmbeddingsRuntime)
    texts = [req.input] if isinstance(req.input, str) else req.input
    labels = req.labels if isinstance(req.labels, dict) else {n: n for n in req.labels}
    # Through the model's adaptive batcher, merged with other requests to the same embeddings model.
    vectors = await plane.task_predict(
        info, {"text": _objects(zero_shot.inputs(texts, labels))}, ["embedding"]
    )
    results = zero_shot.from_vectors(vectors["embedding"], len(texts), list(labels))
    return JSONBytes(
        {
            "object": "list",
            "model": req.model,
            "data": [{"index": i, "label": r.label, "scores": r.scores} for i, r in enumerate(results)],
        }
    )
