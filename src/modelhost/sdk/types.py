"""Typed results of the SDK. Records are pydantic models that keep unknown fields (a newer server may
add some) and still read like the dicts earlier SDK versions returned: ``rec["version"]``,
``rec.get("x")`` and ``rec.to_dict()`` give the JSON exactly as the server sent it."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ModelWrapValidatorHandler, PrivateAttr, model_validator

R = TypeVar("R", bound="Record")


class Record(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_raw(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        rec = handler(data)
        if isinstance(data, dict):
            rec._raw = data
        return rec

    @classmethod
    def parse(cls: type[R], data: dict[str, Any]) -> R:
        return cls.model_validate(data)

    def __getitem__(self, key: str) -> Any:
        return self._raw[key]

    def __contains__(self, key: object) -> bool:
        return key in self._raw

    def get(self, key: str, default: Any = None) -> Any:
        return self._raw.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """The answer as the server sent it (JSON types)."""
        return dict(self._raw)


# --- registry -----------------------------------------------------------------------------------------


class ModelRecord(Record):
    name: str
    description: str = ""
    task: str | None = None
    created_at: datetime
    latest_version: int | None = None
    aliases: dict[str, int] = {}


class VersionRecord(Record):
    model: str
    version: int
    format: str
    runtime: str
    sha256: str
    size_bytes: int | None = None
    signature: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    params: dict[str, Any] = {}
    tags: dict[str, Any] = {}
    lineage: dict[str, Any] = {}
    description: str = ""
    created_by: str = ""
    created_at: datetime
    aliases: list[str] = []


class AliasRecord(Record):
    model: str
    alias: str
    version: int
    protected: bool = False
    updated_at: datetime
    updated_by: str = ""


class AliasEvent(Record):
    alias: str
    from_version: int | None = None
    to_version: int | None = None
    actor: str = ""
    reason: str = ""
    kind: str = "set"
    at: datetime


class Canary(Record):
    version: int
    percent: float


class Deployment(Record):
    model: str
    max_batch_size: int | None = None
    max_wait_ms: float | None = None
    workers: int | None = None
    canaries: dict[str, Canary] = {}


# --- gateway --------------------------------------------------------------------------------------------


class KeyRecord(Record):
    """An API key's record; ``key`` holds the secret only in the answers of create and rotate."""

    key_id: str
    name: str
    owner: str = ""
    scopes: list[str] = []
    limits: dict[str, Any] = {}
    expires_at: datetime | None = None
    revoked: bool = False
    revoked_at: datetime | None = None
    created_at: datetime | None = None
    created_by: str = ""
    last_used_at: datetime | None = None
    rotated_from: str | None = None
    key: str | None = None


class UsageRecord(Record):
    key_id: str
    model: str
    version: str
    day: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    rows: int = 0
    errors: int = 0
    cost: float = 0.0


class AuditEntry(Record):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any] = {}


# --- operations -----------------------------------------------------------------------------------------


class FeatureDrift(Record):
    feature: str
    kind: str
    test: str
    score: float
    p_value: float
    severity: str
    drifted: bool


class DriftReport(Record):
    model: str
    version: int
    reference_rows: int
    current_rows: int
    drifted: bool
    note: str | None = None
    features: list[FeatureDrift] = []


class LoadedModel(Record):
    model: str
    version: int
    state: str
    runtime: str
    explicit: bool = False
    inflight: int = 0
    load_seconds: float = 0.0
    batching: dict[str, Any] | None = None
    workers: list[int] = []


class ServerStatus(Record):
    pid: int
    ready: bool
    max_rss_mb: float
    models: list[LoadedModel] = []


# --- OIP v2 ---------------------------------------------------------------------------------------------


class TensorSpec(Record):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(Record):
    name: str
    versions: list[str] | None = None
    platform: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


class ServerMetadata(Record):
    name: str
    version: str
    extensions: list[str] = []


class RepositoryEntry(Record):
    name: str
    version: str | None = None
    state: str | None = None
    reason: str | None = None


@dataclass
class InferResult(Mapping[str, np.ndarray]):
    """Outputs by name as numpy arrays, plus the version that answered."""

    model_name: str
    model_version: str
    outputs: dict[str, np.ndarray]
    id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.outputs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.outputs)

    def __len__(self) -> int:
        return len(self.outputs)


# --- OpenAI-compatible routes ---------------------------------------------------------------------------


class Usage(Record):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatMessage(Record):
    role: str
    content: str | None = None


class ChatChoice(Record):
    index: int
    message: ChatMessage
    finish_reason: str | None = None


class ChatCompletion(Record):
    id: str
    model: str
    created: int = 0
    choices: list[ChatChoice]
    usage: Usage | None = None

    @property
    def text(self) -> str:
        """The first choice's content."""
        return self.choices[0].message.content or ""


class ChatDelta(Record):
    role: str | None = None
    content: str | None = None


class ChatChunkChoice(Record):
    index: int
    delta: ChatDelta
    finish_reason: str | None = None


class ChatChunk(Record):
    id: str
    model: str
    choices: list[ChatChunkChoice] = []
    usage: Usage | None = None

    @property
    def text(self) -> str:
        return "".join(c.delta.content or "" for c in self.choices[:1])


class CompletionChoice(Record):
    index: int
    text: str
    finish_reason: str | None = None


class Completion(Record):
    """A text completion, or one chunk of a streamed one."""

    id: str
    model: str
    choices: list[CompletionChoice] = []
    usage: Usage | None = None

    @property
    def text(self) -> str:
        return self.choices[0].text if self.choices else ""


class Embedding(Record):
    index: int
    embedding: list[float] | str


class Embeddings(Record):
    model: str
    data: list[Embedding]
    usage: Usage | None = None

    @property
    def vectors(self) -> np.ndarray:
        """All embeddings as one float32 matrix (base64 answers decoded)."""
        rows = [
            np.frombuffer(base64.b64decode(e.embedding), dtype=np.float32)
            if isinstance(e.embedding, str)
            else np.asarray(e.embedding, dtype=np.float32)
            for e in sorted(self.data, key=lambda e: e.index)
        ]
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)


class OpenAIModel(Record):
    id: str
    created: int = 0
    owned_by: str = ""


# --- task routes ----------------------------------------------------------------------------------------


class Transcription(Record):
    text: str
    language: str | None = None
    duration: float | None = None
    segments: list[dict[str, Any]] | None = None


class TranslatedText(Record):
    index: int
    text: str


class Translation(Record):
    model: str
    source: str
    target: str
    data: list[TranslatedText]
    latency_ms: float = 0.0

    @property
    def texts(self) -> list[str]:
        return [d.text for d in sorted(self.data, key=lambda d: d.index)]


class Summary(Record):
    model: str
    mode: str
    summary: str
    sentence_indexes: list[int] = []
    sentence_count: int = 0
    latency_ms: float = 0.0


class ClassifiedText(Record):
    index: int
    label: str
    scores: dict[str, float]


class Classification(Record):
    model: str
    data: list[ClassifiedText]

    @property
    def labels(self) -> list[str]:
        return [d.label for d in sorted(self.data, key=lambda d: d.index)]
