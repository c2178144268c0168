"""Task endpoints in each ecosystem's shape, over the same DataPlane as OIP v2 (the generic path):
OpenAI-compatible speech-to-text and a translation route. Under /v1, errors have OpenAI's shape."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import PlainTextResponse, Response

from modelhost.errors import InvalidInput, ModelhostError, NotFound
from modelhost.runtimes.translation import TranslationRuntime
from modelhost.runtimes.whisper import WhisperRuntime
from modelhost.serving.deps import Plane
from modelhost.serving.responses import JSONBytes

router = APIRouter(prefix="/v1", tags=["Tasks"])

MAX_TRANSLATION_TEXTS = 128


async def _runtime(plane: Plane, ref: str, kind: type[Any]) -> Any:
    try:
        _info, runtime = await plane.runtime_of(ref, kind)
    except ModelhostError as exc:
        if exc.param is None and (isinstance(exc, NotFound) or exc.status_code == 400):
            exc.param = "model"
        raise
    return runtime


@router.post(
    "/audio/transcriptions",
    summary="Speech to text (OpenAI-compatible multipart: file, model, language, response_format)",
)
async def transcriptions(
    plane: Plane,
    file: Annotated[UploadFile, File(description="Audio in any common format (WAV, FLAC, MP3, OGG…)")],
    model: Annotated[str, Form(min_length=1)],
    language: Annotated[str | None, Form(max_length=8)] = None,
    response_format: Annotated[Literal["json", "text", "verbose_json"], Form()] = "json",
    temperature: Annotated[float, Form(ge=0.0, le=0.0, description="Only greedy decoding (0)")] = 0.0,
) -> Response:
    runtime: WhisperRuntime = await _runtime(plane, model, WhisperRuntime)
    data = await file.read()
    if not data:
        raise InvalidInput("the uploaded file is empty", param="file")
    transcript = await anyio.to_thread.run_sync(runtime.transcribe, data, language)
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
async def translations(req: TranslationRequest, plane: Plane) -> JSONBytes:
    runtime: TranslationRuntime = await _runtime(plane, req.model, TranslationRuntime)
    texts = [req.text] if isinstance(req.text, str) else req.text
    runtime.check_pair(req.source, req.target)
    started = time.perf_counter()
    out = await anyio.to_thread.run_sync(runtime.translate, texts, req.source, req.target)
    return JSONBytes(
        {
            "object": "translation.list",
            "model": req.model,
            "source": req.source.lower(),
            "target": req.target.lower(),
            "data": [{"index": i, "text": t} for i, t in enumerate(out)],
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }
    )
