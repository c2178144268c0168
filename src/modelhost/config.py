"""Typed settings, built once at start-up (``Settings()``) and passed down.

Every field reads the environment variable ``MODELHOST_<FIELD>``; nothing here reads the
environment at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """modelhost configuration (environment prefix ``MODELHOST_``)."""

    model_config = SettingsConfigDict(env_prefix="MODELHOST_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".modelhost",
        description="Home directory for the default SQLite registry and local artifact store.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the registry database; default `sqlite:///$MODELHOST_HOME/registry.db`.",
    )
    artifact_url: str | None = Field(
        default=None,
        description="Artifact store location: a local directory or any fsspec URL (s3://bucket/prefix); "
        "default `$MODELHOST_HOME/artifacts`.",
    )
    cache_dir: Path | None = Field(
        default=None,
        description="Local cache for artifacts fetched from remote stores; default `$MODELHOST_HOME/cache`.",
    )
    host: str = Field(default="127.0.0.1", description="Address the server binds to.")
    port: int = Field(default=8000, ge=0, le=65535, description="HTTP port of the server.")
    grpc_port: int = Field(
        default=8001,
        ge=0,
        le=65535,
        description="Port of the Open Inference Protocol v2 gRPC service, served next to HTTP on the same "
        "host; 0 disables it (so does `modelhost serve --no-grpc`).",
    )
    grpc_max_message_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="Largest gRPC message received or sent, in bytes (RESOURCE_EXHAUSTED above).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Server log level."
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as text or one JSON object per line (with request ids)."
    )
    access_log: bool = Field(default=False, description="Write one log record per HTTP request.")

    auth: Literal["auto", "keys", "none"] = Field(
        default="auto",
        description="Who may call the server: `keys` requires an API key on every protected route; "
        "`none` lets anonymous clients infer and read models (refused unless the server binds to loopback); "
        "`auto` is `none` on loopback and `keys` otherwise. The admin API always needs an admin key.",
    )
    key_secret: str | None = Field(
        default=None,
        description="Server secret for the HMAC-SHA256 of API keys; default: a random secret generated "
        "once in `$MODELHOST_HOME/gateway.secret` (mode 0600). Share it between replicas.",
    )
    key_cache_s: float = Field(
        default=1.0,
        ge=0,
        description="Seconds a verified API key is cached in the server; revocations made through this "
        "server apply at once, those made by other processes (CLI, replicas) within this time.",
    )
    rate_limit_backend: Literal["memory", "redis"] = Field(
        default="memory",
        description="Where rate-limit, quota and budget counters live: `memory` (one server process) or "
        "`redis` (shared by every replica; needs MODELHOST_REDIS_URL).",
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL for the `redis` rate-limit backend (redis://host:6379/0)."
    )
    limits_fail_open: bool = Field(
        default=False,
        description="When the rate-limit backend is unreachable: false answers 503 (fail closed), "
        "true admits the request without limits and logs a warning.",
    )
    prices: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Prices for cost metering and budgets, by `model` or `model/version`: JSON like "
        '`{"iris": {"request": 0.001}, "llm/2": {"input_1k": 0.1, "output_1k": 0.2}}`.',
    )
    usage_flush_s: float = Field(
        default=5.0, gt=0, description="Seconds between writes of aggregated usage counters to the database."
    )
    encryption_key: str | None = Field(
        default=None,
        description="Base64 of a 32-byte key: new artifacts are stored encrypted (AES-256-GCM, one data "
        "key per artifact wrapped with this key). Unset: artifacts are stored in clear.",
    )
    encryption_key_file: Path | None = Field(
        default=None,
        description="File holding encryption keys, one base64 key per line: the first encrypts, all "
        "decrypt (rotation). Used when MODELHOST_ENCRYPTION_KEY is unset.",
    )
    encryption_old_keys: list[str] = Field(
        default_factory=list,
        description="Earlier base64 encryption keys, still accepted for decryption during key rotation.",
    )
    redact_logs: bool = Field(
        default=True,
        description="Redact e-mail addresses, phone numbers, card numbers, API keys and the "
        "MODELHOST_REDACT_PATTERNS from every log line the server writes.",
    )
    redact_patterns: list[str] = Field(
        default_factory=list,
        description="Extra regular expressions whose matches are redacted from logs (e.g. customer ids).",
    )
    log_payloads: bool = Field(
        default=False,
        description="Log inference request payloads at debug level (redacted when MODELHOST_REDACT_LOGS).",
    )
    load_on_start: bool = Field(
        default=True,
        description="Load each model's default version (alias 'production', else the latest) at start-up.",
    )
    lazy_load: bool = Field(
        default=True,
        description="Load a registered version on its first inference request if it is not loaded yet.",
    )
    resolve_cache_s: float = Field(
        default=2.0,
        ge=0,
        description="Seconds a resolved model reference (name@alias -> version) is cached; alias moves "
        "made through this server apply at once, moves made by other processes within this time.",
    )
    max_batch_size: int = Field(
        default=32,
        ge=1,
        le=4096,
        description="Default adaptive batching limit in rows per batch (1 turns batching off); a model's "
        "deployment settings override it.",
    )
    max_wait_ms: float = Field(
        default=0.0,
        ge=0,
        le=10_000,
        description="Default time a batch waits for more rows after its first request; 0 batches only what "
        "queued while the model was busy, adding no latency.",
    )
    workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Default worker processes per model (0 = run in the server process); a model's "
        "deployment settings override it.",
    )
    inline_predict_us: float = Field(
        default=100.0,
        ge=0,
        description="Models whose predict takes less than this (moving average, microseconds) run on the "
        "event loop instead of a worker thread; 0 always uses a thread.",
    )
    inline_lone_ms: float = Field(
        default=25.0,
        ge=0,
        description="A request that finds the server otherwise idle runs its model on the event loop (no "
        "thread hand-offs: ~0.4 ms less latency on 2 cores) when the model's recent calls took less than this; "
        "a request arriving meanwhile is read at most this much later. 0 = off.",
    )
    batch_settle_ticks: int = Field(
        default=0,
        ge=0,
        description="With max_wait_ms 0, a batch that could take more rows keeps collecting for up to this "
        "many event-loop turns while requests are still arriving (it stops after two turns with no new "
        "request): larger batches for a model that is cheap per call; 0 (default) closes it at once.",
    )
    memory_budget_mb: float = Field(
        default=0.0,
        ge=0,
        description="Memory budget for loaded models, estimated from artifact sizes; least recently used "
        "models are unloaded to make room (0 = unlimited).",
    )
    drain_timeout_s: float = Field(
        default=30.0,
        ge=0,
        description="How long an unload or hot swap waits for in-flight requests to finish.",
    )
    warmup: bool = Field(
        default=True, description="Run one all-zero row through a model after loading, before it serves."
    )
    prediction_log_rate: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Share of inference requests whose inputs and outputs are logged (for drift); 0 turns "
        "prediction logging off.",
    )
    drift_webhook_url: str | None = Field(
        default=None, description="URL that receives a JSON POST when a drift report finds drift."
    )
    otel_enabled: bool = Field(
        default=False,
        description="Emit an OpenTelemetry span per HTTP request (needs opentelemetry-api; exporters are "
        "configured the OpenTelemetry way).",
    )
    strict_readiness: bool = Field(
        default=False,
        description="/v2/health/ready answers 503 while any loaded model version is in the FAILED state "
        "(a load or integrity failure), so an orchestrator keeps traffic away.",
    )
    metrics_enabled: bool = Field(default=True, description="Serve Prometheus metrics at /metrics.")
    console_enabled: bool = Field(
        default=True,
        description="Serve the web console at /console (static files; it calls the same API with the "
        "user's key).",
    )
    max_request_rows: int = Field(
        default=100_000, ge=1, description="Most rows one inference request may carry (413 above)."
    )
    request_timeout_s: float = Field(
        default=60.0, gt=0, description="Longest an inference may take before it is answered with 504."
    )
    infer_fast_path: bool = Field(
        default=True,
        description="Answer POST /v2/models/{name}[/versions/{v}]/infer in a pure-ASGI handler ahead of the "
        "router (same checks, errors and metrics as the route, several times cheaper per request); "
        "POST /v1/translations likewise; false sends every request through the FastAPI routes.",
    )
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Largest request body accepted, in bytes (413 above)."
    )
    task_threads: int = Field(
        default=2,
        ge=1,
        description="CPU threads each speech or image model uses for one request.",
    )
    task_top_k: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Labels and scores an image classifier returns per image (the default top_k of "
        "transformers-pipeline classifiers).",
    )
    pipeline_batch_size: int = Field(
        default=32,
        ge=1,
        le=1024,
        description="Rows one forward pass of a transformers-pipeline model takes at most (bigger batches "
        "are split).",
    )
    skops_extra_trusted_types: list[str] = Field(
        default_factory=list,
        description="Extra fully-qualified types an operator trusts in skops artifacts, beyond "
        "numpy/scipy/scikit-learn.",
    )
    llm_max_seqs: int = Field(
        default=16, ge=1, description="Sequences an LLM decodes together (continuous batching), per model."
    )
    llm_max_queue: int = Field(
        default=64,
        ge=0,
        description="LLM requests waiting for a batch slot before new ones get 429, per model.",
    )
    llm_prefill_budget: int = Field(
        default=512,
        ge=1,
        description="Prompt tokens an LLM prefills between two decode steps (long prompts never stall streams); "
        "with CUDA the default is 4096 (a GPU prefill of a few thousand tokens costs about what one decode step does).",
    )
    llm_max_context: int = Field(
        default=4096, ge=16, description="Cap on an LLM's context window (prompt + completion tokens)."
    )
    llm_fast_forward: bool = Field(
        default=True,
        description="Run Llama-architecture LLMs through modelhost's lean forward (fused projections, "
        "in-place KV cache; same weights and dtype) instead of transformers' generic one.",
    )
    llm_cpu_dtype: Literal["float32", "bfloat16"] = Field(
        default="float32",
        description="Weight dtype of LLMs on CPU: `bfloat16` halves the memory read per token (faster on "
        "CPUs with AVX512-BF16/AMX) but can change greedy outputs slightly; GPUs always use bfloat16.",
    )
    llm_cpu_quant: Literal["none", "int8"] = Field(
        default="int8",
        description="Weights of the lean Llama forward's projections and lm_head on CPU: `int8` (one scale per "
        "output channel, fbgemm int8 kernels) reads a quarter of the fp32 bytes per token, ~2-3x faster "
        "decode; top-1 tokens agree with fp32 at ~94-98% of positions; `none` keeps `llm_cpu_dtype` weights.",
    )
    llm_compile: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Decode Llama-architecture LLMs on a static slot KV cache with a `torch.compile`d step "
        "(CUDA graphs on a GPU): `auto` = only with CUDA; `on` forces it on CPU too (slow first compile, and "
        "KV memory for llm_max_seqs x context allocated up front); `off` keeps the eager decode.",
    )
    max_n: int = Field(
        default=8, ge=1, description="Largest `n` (choices per request) on /v1 completion routes."
    )
    upstream_max_connections: int = Field(
        default=100,
        ge=1,
        le=10000,
        description="Connections kept open to each remote OpenAI-compatible upstream (one pooled client per "
        "upstream version); requests beyond it wait for a free connection.",
    )
    backend: Literal["local", "ray"] = Field(
        default="local",
        description="Where models run: `local` (in the server process or its worker processes) or `ray` "
        "(one Ray Serve deployment per served model version; needs the `scale` extra).",
    )
    ray_address: str | None = Field(
        default=None,
        description="Ray cluster to join with the ray backend (`auto`, `ray://head:10001`); unset starts a "
        "local Ray on this machine.",
    )
    ray_num_replicas: int = Field(
        default=1, ge=1, le=1024, description="Replicas per model deployment when autoscaling is off."
    )
    ray_max_replicas: int = Field(
        default=0,
        ge=0,
        le=1024,
        description="Autoscaling upper bound per model deployment; 0 turns autoscaling off "
        "(`MODELHOST_RAY_NUM_REPLICAS` fixed replicas).",
    )
    ray_min_replicas: int = Field(
        default=1, ge=0, le=1024, description="Autoscaling lower bound per model deployment."
    )
    ray_target_ongoing_requests: float = Field(
        default=2.0, gt=0, description="Autoscaling target of in-flight requests per replica."
    )
    ray_num_cpus: float = Field(default=1.0, ge=0, description="CPUs each Ray replica reserves.")
    ray_num_gpus: float = Field(
        default=0.0, ge=0, description="GPUs each Ray replica reserves (fractions share one GPU)."
    )
    ray_model_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-model overrides of the Ray settings as JSON, e.g. "
        '`{"llm": {"num_gpus": 1, "max_replicas": 4}}` (keys: num_replicas, min_replicas, max_replicas, '
        "target_ongoing_requests, num_cpus, num_gpus).",
    )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'registry.db'}"

    @property
    def resolved_artifact_url(self) -> str:
        return self.artifact_url or str(self.home / "artifacts")

    @property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir or self.home / "cache"


def settings_table() -> str:
    """The configuration reference as a Markdown table (README.md embeds it; a test keeps it current)."""
    rows = ["| variable | default | description |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        value = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
        if isinstance(value, Path):
            value = str(value).replace(str(Path.home()), "~", 1)
        default = "unset" if value is None else f"`{value}`"
        rows.append(f"| `MODELHOST_{name.upper()}` | {default} | {field.description} |")
    return "\n".join(rows)
