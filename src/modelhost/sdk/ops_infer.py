"""SDK operations of the data plane: health, OIP v2 (metadata, repository, infer, explain), the
OpenAI-compatible routes (chat, completions, embeddings; streaming) and the task routes
(transcribe, translate, summarize, classify). Each is a flow (see ``spec.py``) shared by both clients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
import orjson

from modelhost.dataplane import codec
from modelhost.errors import InvalidInput
from modelhost.runtimes.base import DATATYPE_TO_NUMPY
from modelhost.sdk.ops_admin import many, one
from modelhost.sdk.spec import Chunks, Flow, Spec, drop_none, model_path, q
from modelhost.sdk.types import (
    ChatChunk,
    ChatCompletion,
    Classification,
    Completion,
    Embeddings,
    InferResult,
    ModelMetadata,
    OpenAIModel,
    RepositoryEntry,
    ServerMetadata,
    Summary,
    Transcription,
    Translation,
)

Message = Mapping[str, Any]


def _ok(resp: httpx.Response) -> bool:
    return resp.status_code == 200


# --- health and metadata --------------------------------------------------------------------------------


def is_live() -> Flow[bool]:
    return (yield Spec("GET", "/v2/health/live", parse=_ok, raw_status=True))


def is_ready() -> Flow[bool]:
    return (yield Spec("GET", "/v2/health/ready", parse=_ok, raw_status=True))


def is_model_ready(name: str, version: str | int | None = None) -> Flow[bool]:
    return (yield Spec("GET", model_path(name, version) + "/ready", parse=_ok, raw_status=True))


def server_metadata() -> Flow[ServerMetadata]:
    return (yield Spec("GET", "/v2", parse=one(ServerMetadata)))


def model_metadata(name: str, version: str | int | None = None) -> Flow[ModelMetadata]:
    """Inputs and outputs (name, datatype, shape) of ``name`` (or ``name@alias``)."""
    return (yield Spec("GET", model_path(name, version), parse=one(ModelMetadata)))


def repository_index(ready_only: bool = False) -> Flow[list[RepositoryEntry]]:
    """Every registered version with its state (the OIP repository index)."""
    body = {"ready": ready_only}
    return (yield Spec("POST", "/v2/repository/index", json=body, parse=many(RepositoryEntry)))


def load(name: str) -> Flow[dict[str, Any]]:
    return (yield Spec("POST", f"/v2/repository/models/{q(name, '@')}/load"))


def unload(name: str) -> Flow[dict[str, Any]]:
    return (yield Spec("POST", f"/v2/repository/models/{q(name, '@')}/unload"))


# --- inference ----------------------------------------------------------------------------------------


def _decode(resp: httpx.Response) -> InferResult:
    content = resp.content
    n = resp.headers.get("inference-header-content-length")
    head, tail = (content[: int(n)], content[int(n) :]) if n is not None else (content, b"")
    body = orjson.loads(head)
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for out in body["outputs"]:
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            raw = tail[offset : offset + size]
            arrays[out["name"]] = codec.decode_binary(out["name"], out["datatype"], out["shape"], raw)
            offset += size
        else:
            arrays[out["name"]] = codec.decode_json(out["name"], out["datatype"], out["shape"], out["data"])
    return InferResult(body["model_name"], str(body.get("model_version")), arrays, body.get("id"), body)


def _tensor_request(
    path: str,
    inputs: Mapping[str, Any],
    outputs: Sequence[str] | None,
    binary: bool,
    request_id: str | None,
    parameters: dict[str, Any] | None,
) -> Spec[InferResult]:
    body: dict[str, Any] = {"inputs": []}
    blobs: list[bytes] = []
    for input_name, value in inputs.items():
        array = np.asarray(value)
        if binary:
            datatype, shape, raw = codec.encode_binary(array)
            params = {"binary_data_size": len(raw)}
            body["inputs"].append(
                {"name": input_name, "datatype": datatype, "shape": shape, "parameters": params}
            )
            blobs.append(raw)
        else:
            datatype, shape, data = codec.encode_json(array)
            body["inputs"].append({"name": input_name, "datatype": datatype, "shape": shape, "data": data})
    top: dict[str, Any] = dict(parameters or {})
    if outputs is not None:
        body["outputs"] = [{"name": o, "parameters": {"binary_data": binary}} for o in outputs]
    elif binary:
        top["binary_data_output"] = True
    if top:
        body["parameters"] = top
    if request_id is not None:
        body["id"] = request_id
    header = orjson.dumps(body)
    headers = {"Content-Type": "application/json"}
    if binary:
        headers = {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header)),
        }
    return Spec("POST", path, content=header + b"".join(blobs), headers=headers, parse=_decode)


def _named_inputs(name: str, version: str | int | None, inputs: Any) -> Flow[Mapping[str, Any]]:
    """A bare array-like becomes the model's single input (its name read from the metadata)."""
    if isinstance(inputs, Mapping):
        return inputs
    meta: ModelMetadata = yield Spec("GET", model_path(name, version), parse=one(ModelMetadata))
    if len(meta.inputs) != 1:
        raise InvalidInput(f"model '{name}' takes {len(meta.inputs)} inputs; pass a dict by name")
    spec = meta.inputs[0]
    return {spec.name: np.asarray(inputs, dtype=DATATYPE_TO_NUMPY.get(spec.datatype))}


def infer(
    name: str,
    inputs: Mapping[str, Any] | Any,
    *,
    version: str | int | None = None,
    outputs: Sequence[str] | None = None,
    binary: bool = False,
    request_id: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> Flow[InferResult]:
    """Run inference (OIP v2). ``inputs`` maps input names to array-likes; a bare array-like is sent
    as the model's single input. ``binary=True`` sends and receives tensors as raw bytes (the binary
    tensor extension), which is faster for large arrays. Outputs come back as numpy arrays."""
    named = yield from _named_inputs(name, version, inputs)
    path = model_path(name, version) + "/infer"
    return (yield _tensor_request(path, named, outputs, binary, request_id, parameters))


def explain(
    name: str, inputs: Mapping[str, Any] | Any, *, version: str | int | None = None
) -> Flow[InferResult]:
    """SHAP values of a prediction: outputs ``shap_values`` and ``base_values``."""
    named = yield from _named_inputs(name, version, inputs)
    return (yield _tensor_request(model_path(name, version) + "/explain", named, None, False, None, None))


def infer_request(
    name: str, request: dict[str, Any], *, version: str | int | None = None
) -> Flow[dict[str, Any]]:
    """Send a ready-made OIP v2 JSON request; returns the JSON response as it came."""
    return (yield Spec("POST", model_path(name, version) + "/infer", json=request))


# --- OpenAI-compatible routes -------------------------------------------------------------------------


def _chat_body(model: str, messages: Sequence[Message] | str, options: dict[str, Any]) -> dict[str, Any]:
    msgs = (
        [{"role": "user", "content": messages}] if isinstance(messages, str) else [dict(m) for m in messages]
    )
    return {"model": model, "messages": msgs, **drop_none(options)}


def chat(
    model: str,
    messages: Sequence[Message] | str,
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    stop: str | list[str] | None = None,
    seed: int | None = None,
    n: int | None = None,
    **extra: Any,
) -> Flow[ChatCompletion]:
    """A chat completion (``/v1/chat/completions``). ``messages`` is a list of ``{"role", "content"}``
    or one user message as a string; ``extra`` passes any other OpenAI/vLLM parameter."""
    options = {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "stop": stop,
               "seed": seed, "n": n, **extra}  # fmt: skip
    body = _chat_body(model, messages, options)
    return (yield Spec("POST", "/v1/chat/completions", json=body, parse=one(ChatCompletion)))


def chat_stream(
    model: str,
    messages: Sequence[Message] | str,
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    stop: str | list[str] | None = None,
    seed: int | None = None,
    include_usage: bool = False,
    **extra: Any,
) -> Flow[Chunks[ChatChunk]]:
    """Like ``chat`` but streamed (SSE): iterate the answer for ``ChatChunk`` objects (``.text``)."""
    options = {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "stop": stop,
               "seed": seed, "stream": True, **extra}  # fmt: skip
    if include_usage:
        options["stream_options"] = {"include_usage": True}
    body = _chat_body(model, messages, options)
    return (yield Spec("POST", "/v1/chat/completions", json=body, chunk=ChatChunk.parse))


def complete(
    model: str,
    prompt: str | list[str],
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    stop: str | list[str] | None = None,
    seed: int | None = None,
    n: int | None = None,
    **extra: Any,
) -> Flow[Completion]:
    """A text completion (``/v1/completions``)."""
    options = {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "stop": stop,
               "seed": seed, "n": n, **extra}  # fmt: skip
    body = {"model": model, "prompt": prompt, **drop_none(options)}
    return (yield Spec("POST", "/v1/completions", json=body, parse=one(Completion)))


def complete_stream(
    model: str,
    prompt: str,
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    stop: str | list[str] | None = None,
    seed: int | None = None,
    **extra: Any,
) -> Flow[Chunks[Completion]]:
    """Like ``complete`` but streamed (SSE): iterate the answer for ``Completion`` chunks."""
    options = {"max_tokens": max_tokens, "temperature": temperature, "stop": stop, "seed": seed,
               "stream": True, **extra}  # fmt: skip
    body = {"model": model, "prompt": prompt, **drop_none(options)}
    return (yield Spec("POST", "/v1/completions", json=body, chunk=Completion.parse))


def embed(
    model: str,
    input: str | list[str],
    *,
    encoding_format: Literal["float", "base64"] = "float",
    dimensions: int | None = None,
) -> Flow[Embeddings]:
    """Embeddings (``/v1/embeddings``); ``.vectors`` gives them as one numpy matrix."""
    body = drop_none(
        {"model": model, "input": input, "encoding_format": encoding_format, "dimensions": dimensions}
    )
    return (yield Spec("POST", "/v1/embeddings", json=body, parse=one(Embeddings)))


def openai_models() -> Flow[list[OpenAIModel]]:
    """Models served on /v1 (LLMs and embedding models), by name and name@alias."""
    return (yield Spec("GET", "/v1/models", parse=lambda r: [OpenAIModel.parse(m) for m in r.json()["data"]]))


# --- task routes ---------------------------------------------------------------------------------------


def transcribe(
    model: str,
    audio: str | Path | bytes,
    *,
    language: str | None = None,
    verbose: bool = False,
    filename: str | None = None,
) -> Flow[Transcription]:
    """Speech to text (``/v1/audio/transcriptions``); ``audio`` is a file path or the file's bytes.
    ``verbose=True`` adds language, duration and timed segments."""
    if isinstance(audio, bytes):
        data, name = audio, filename or "audio"
    else:
        data, name = Path(audio).read_bytes(), filename or Path(audio).name
    form = drop_none({"model": model, "language": language,
                      "response_format": "verbose_json" if verbose else "json"})  # fmt: skip
    files = {"file": (name, data, "application/octet-stream")}
    return (yield Spec("POST", "/v1/audio/transcriptions", data=form, files=files, parse=one(Transcription)))


def translate(model: str, text: str | list[str], *, source: str, target: str) -> Flow[Translation]:
    """Translate one text or a batch (``/v1/translations``); ``.texts`` gives the translations."""
    body = {"model": model, "text": text, "source": source, "target": target}
    return (yield Spec("POST", "/v1/translations", json=body, parse=one(Translation)))


def summarize(
    model: str,
    text: str,
    *,
    mode: Literal["extractive", "abstractive"] = "extractive",
    sentences: int = 3,
    max_tokens: int | None = None,
    prompt: str | None = None,
) -> Flow[Summary]:
    """Summarize (``/v1/summaries``): extractive with an embeddings model, abstractive with an LLM."""
    body = drop_none({"model": model, "text": text, "mode": mode, "sentences": sentences,
                      "max_tokens": max_tokens, "prompt": prompt})  # fmt: skip
    return (yield Spec("POST", "/v1/summaries", json=body, parse=one(Summary)))


def classify(model: str, input: str | list[str], labels: list[str] | dict[str, str]) -> Flow[Classification]:
    """Zero-shot classification (``/v1/classifications``); ``labels`` may map label -> description."""
    body = {"model": model, "input": input, "labels": labels}
    return (yield Spec("POST", "/v1/classifications", json=body, parse=one(Classification)))
