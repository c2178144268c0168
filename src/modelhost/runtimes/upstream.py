"""A remote OpenAI-compatible endpoint (vLLM, another modelhost, ...) registered as a model version.

The artifact is a small JSON manifest (format ``openai-upstream``)::

    {"format": "openai-upstream", "base_url": "http://vllm:8000/v1", "model": "meta-llama/Llama-3.1-8B",
     "capabilities": ["chat", "completions"], "timeout_s": 300, "api_key_env": "VLLM_API_KEY"}

It is registered like any artifact (sha256 pin, aliases, canary). The upstream's API key is never in the
manifest in clear: either the name of an environment variable of the serving process (``api_key_env``)
or a secret sealed with the registry's encryption key (``api_key_sealed``, made by ``modelhost upstream
seal``). The registry's version record holds neither, only which kind of reference is used.

One ``httpx.AsyncClient`` per loaded version pools the connections to the upstream; the routes in
``serving/rest/openai/upstream.py`` use ``post`` and ``open_stream``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modelhost.config import Settings
from modelhost.errors import (
    InvalidInput,
    ModelhostError,
    ModelNotReady,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from modelhost.registry.formats import OPENAI_UPSTREAM
from modelhost.runtimes.base import Runtime, Signature, TensorSpec

log = logging.getLogger(__name__)

Capability = Literal["chat", "completions", "embeddings"]
ENDPOINTS: dict[Capability, str] = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLAINTEXT_KEYS = {"api_key", "key", "token", "authorization", "password", "secret"}


class UpstreamManifest(BaseModel):
    """The registered manifest of one upstream."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["openai-upstream"]
    base_url: str = Field(description="The upstream's OpenAI base URL, e.g. http://host:8000/v1")
    model: str = Field(min_length=1, description="The model name the upstream knows")
    capabilities: list[Capability] = Field(default=["chat", "completions"], min_length=1)
    connect_timeout_s: float = Field(default=5.0, gt=0, le=600)
    timeout_s: float = Field(default=300.0, gt=0, le=3600, description="Read timeout per request")
    api_key_env: str | None = Field(default=None, description="Environment variable holding the key")
    api_key_sealed: str | None = Field(default=None, description="Key sealed by `modelhost upstream seal`")
    context_length: int | None = Field(default=None, ge=1)
    description: str = ""

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        url = httpx.URL(value)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("base_url must be an http:// or https:// URL")
        if url.userinfo:
            raise ValueError("base_url must not carry credentials; use api_key_env or api_key_sealed")
        return value.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("api_key_env must be the name of an environment variable")
        return value

    @field_validator("api_key_sealed")
    @classmethod
    def _sealed(cls, value: str | None) -> str | None:
        from modelhost.gateway.crypto import SEALED_PREFIX

        if value is not None and not value.startswith(SEALED_PREFIX):
            raise ValueError(
                f"api_key_sealed must be a token made by `modelhost upstream seal` ({SEALED_PREFIX}...)"
            )
        return value

    def key_reference(self) -> str:
        """Where the key comes from, without the key: safe to store and show."""
        if self.api_key_env:
            return f"env:{self.api_key_env}"
        return "sealed" if self.api_key_sealed else "none"


def read_manifest(path: Path) -> UpstreamManifest:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path.name} is not a readable upstream manifest: {exc}") from None
    if isinstance(doc, dict):
        plain = sorted(k for k in doc if k.lower() in _PLAINTEXT_KEYS)
        if plain:
            raise InvalidInput(
                f"{path.name} holds a plaintext secret ({', '.join(plain)}); modelhost never stores one. "
                "Give api_key_env (an environment variable of the server) or api_key_sealed "
                "(`modelhost upstream seal`, with MODELHOST_ENCRYPTION_KEY set)"
            )
    try:
        manifest = UpstreamManifest.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'manifest'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise InvalidInput(f"{path.name} is not a valid openai-upstream manifest: {problems}") from None
    if manifest.api_key_env and manifest.api_key_sealed:
        raise InvalidInput(f"{path.name}: give api_key_env or api_key_sealed, not both")
    return manifest


def _error_detail(response: httpx.Response) -> tuple[str, str | None, str | None]:
    """(message, code, param) from an upstream error body in OpenAI's, OIP's or FastAPI's shape."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase, None, None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        return str(error.get("message", "")), str(code) if code else None, error.get("param")
    if isinstance(error, str):
        return error, None, None
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail if detail is not None else body)[:500], None, None


class UpstreamRuntime(Runtime):
    """Proxies /v1 requests to a remote OpenAI-compatible server; /v2 inference is refused."""

    name = "openai-upstream"
    formats = (OPENAI_UPSTREAM,)
    remote = True

    def __init__(self, path: Path, signature: Signature, settings: Settings) -> None:
        super().__init__(path, signature, settings)
        self.manifest: UpstreamManifest | None = None
        self._headers: dict[str, str] = {}
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def inspect(cls, path: Path, settings: Settings) -> Signature:
        manifest = read_manifest(path)
        if manifest.api_key_sealed:
            cls._unseal(manifest, settings)  # refuse a token this registry's key cannot open, now
        extra: dict[str, Any] = {
            "kind": OPENAI_UPSTREAM,
            "base_url": manifest.base_url,
            "upstream_model": manifest.model,
            "capabilities": list(manifest.capabilities),
            "api_key": manifest.key_reference(),
        }
        if manifest.context_length:
            extra["context_length"] = manifest.context_length
        return Signature(
            inputs=(TensorSpec("text_input", "BYTES", (-1,)),),
            outputs=(TensorSpec("text_output", "BYTES", (-1,)),),
            extra=extra,
        )

    @staticmethod
    def _unseal(manifest: UpstreamManifest, settings: Settings) -> str:
        from modelhost.gateway.crypto import cipher_from_settings

        cipher = cipher_from_settings(settings)
        if cipher is None:
            raise InvalidInput(
                "the manifest's api_key_sealed needs the registry's encryption key (MODELHOST_ENCRYPTION_KEY)"
            )
        return cipher.unseal(str(manifest.api_key_sealed))

    def load(self) -> None:
        manifest = read_manifest(self.path)
        key: str | None = None
        if manifest.api_key_env:
            key = os.environ.get(manifest.api_key_env)
            if not key:
                raise ModelNotReady(
                    f"upstream key variable {manifest.api_key_env} is not set in the server's environment"
                )
        elif manifest.api_key_sealed:
            key = self._unseal(manifest, self.settings)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.manifest = manifest

    @property
    def upstream_model(self) -> str:
        return self._manifest().model

    @property
    def capabilities(self) -> list[str]:
        return list(self._manifest().capabilities)

    def _manifest(self) -> UpstreamManifest:
        if self.manifest is None:
            raise ModelNotReady("the upstream model is not loaded")
        return self.manifest

    def client(self) -> httpx.AsyncClient:
        """The pooled client, made on first use (in the event loop that serves the requests)."""
        if self._client is None:
            m = self._manifest()
            self._client = httpx.AsyncClient(
                base_url=m.base_url,
                headers=self._headers,
                timeout=httpx.Timeout(m.timeout_s, connect=m.connect_timeout_s),
                limits=httpx.Limits(
                    max_connections=self.settings.upstream_max_connections,
                    max_keepalive_connections=self.settings.upstream_max_connections,
                ),
            )
        return self._client

    def _where(self) -> str:
        return f"upstream {self._manifest().base_url}"

    def _transport_error(self, exc: httpx.HTTPError) -> ModelhostError:
        if isinstance(exc, httpx.TimeoutException):
            return UpstreamTimeout(f"{self._where()} did not answer in time ({type(exc).__name__})")
        return UpstreamUnavailable(f"{self._where()} cannot be reached ({type(exc).__name__}: {exc})")

    def _status_error(self, response: httpx.Response) -> ModelhostError:
        message, code, param = _error_detail(response)
        status = response.status_code
        if status in (401, 403, 407):
            # our configured credentials, not the client's: the client cannot fix it
            return UpstreamUnavailable(
                f"{self._where()} refused modelhost's credentials ({status}): {message}"
            )
        if status >= 500 or status < 400:
            return UpstreamUnavailable(f"{self._where()} failed ({status}): {message}")
        headers = {k: v for k, v in response.headers.items() if k.lower() == "retry-after"}
        return UpstreamRejected(status, f"upstream: {message}", code=code, param=param, headers=headers)

    def check(self, capability: Capability, ref: str) -> None:
        if capability not in self._manifest().capabilities:
            raise InvalidInput(
                f"model '{ref}' is a remote upstream without the {capability} capability "
                f"(it has: {', '.join(self._manifest().capabilities)})",
                param="model",
            )

    async def post(self, capability: Capability, body: dict[str, Any]) -> dict[str, Any]:
        """One non-streaming request; upstream errors become modelhost errors."""
        try:
            response = await self.client().post(ENDPOINTS[capability], json=body)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status_code != 200:
            raise self._status_error(response)
        try:
            result = response.json()
        except ValueError:
            raise UpstreamUnavailable(f"{self._where()} answered with something other than JSON") from None
        if not isinstance(result, dict):
            raise UpstreamUnavailable(f"{self._where()} answered with a JSON {type(result).__name__}")
        return result

    async def open_stream(self, capability: Capability, body: dict[str, Any]) -> httpx.Response:
        """Send a streaming request and check its status (errors raise before any byte goes to the
        client); read the events with ``events``, which closes the response."""
        client = self.client()
        request = client.build_request("POST", ENDPOINTS[capability], json=body)
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status_code != 200:
            try:
                await response.aread()
            except httpx.HTTPError as exc:
                raise self._transport_error(exc) from None
            finally:
                await response.aclose()
            raise self._status_error(response)
        return response

    async def events(self, response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
        """The JSON payloads of an SSE response up to ``[DONE]``; closing this closes the connection,
        which cancels the upstream's generation."""
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    event = json.loads(data)
                except ValueError:
                    raise UpstreamUnavailable(f"{self._where()} sent a malformed event") from None
                if isinstance(event, dict):
                    yield event
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        finally:
            await response.aclose()

    def predict(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        raise InvalidInput(
            "this model is a remote OpenAI-compatible upstream; it is served on /v1 (chat, completions, "
            "embeddings) only"
        )

    def unload(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        import anyio.from_thread

        try:  # the repository unloads from a worker thread of the serving event loop
            anyio.from_thread.run(client.aclose)
        except RuntimeError:  # no event loop to return to (process shutdown): the sockets close with it
            log.debug("upstream client of %s dropped without aclose", self.path)
