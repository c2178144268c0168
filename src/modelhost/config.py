"""Typed settings, built once at start-up (``Settings()``) and passed down.

Every field reads the environment variable ``MODELHOST_<FIELD>``; nothing here reads the
environment at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Server log level."
    )
    admin_token: str | None = Field(
        default=None,
        description="Bearer token for the admin REST API (/api/v1: register, aliases). Unset: the admin "
        "API is disabled; the CLI still works on the machine. There is no default secret.",
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
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Largest request body accepted, in bytes (413 above)."
    )
    task_threads: int = Field(
        default=2,
        ge=1,
        description="CPU threads each speech, translation or image model uses for one request.",
    )
    task_top_k: int = Field(
        default=5, ge=1, le=100, description="Labels and scores an image classifier returns per image."
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
        description="Prompt tokens an LLM prefills between two decode steps (long prompts never stall streams).",
    )
    llm_max_context: int = Field(
        default=4096, ge=16, description="Cap on an LLM's context window (prompt + completion tokens)."
    )
    max_n: int = Field(
        default=8, ge=1, description="Largest `n` (choices per request) on /v1 completion routes."
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
