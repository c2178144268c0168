"""Loaded models: load/unload at run time, lazy load on first use, one load at a time per version."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum

import anyio

from modelhost.config import Settings
from modelhost.errors import ModelhostError, ModelNotReady
from modelhost.registry import Registry, VersionInfo
from modelhost.runtimes import Runtime, runtime_by_name

log = logging.getLogger(__name__)

Key = tuple[str, int]


class ModelState(StrEnum):
    READY = "READY"
    LOADING = "LOADING"
    UNAVAILABLE = "UNAVAILABLE"
    FAILED = "FAILED"


@dataclass
class LoadedModel:
    info: VersionInfo
    state: ModelState = ModelState.LOADING
    runtime: Runtime | None = None
    reason: str = ""
    loaded_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def key(self) -> Key:
        return (self.info.model, self.info.version)


class ModelRepository:
    def __init__(self, registry: Registry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings
        self._models: dict[Key, LoadedModel] = {}
        # Versions an operator unloaded on purpose: lazy loading leaves them alone until loaded again.
        self._held_back: set[Key] = set()

    def get(self, key: Key) -> LoadedModel | None:
        return self._models.get(key)

    def loaded(self) -> list[LoadedModel]:
        return list(self._models.values())

    async def load(self, info: VersionInfo) -> LoadedModel:
        """Load one version (no-op when ready); concurrent calls share one load."""
        self._held_back.discard((info.model, info.version))
        entry = self._models.setdefault((info.model, info.version), LoadedModel(info=info))
        async with entry.lock:
            if entry.state is ModelState.READY:
                return entry
            entry.state, entry.reason = ModelState.LOADING, ""
            try:
                entry.runtime = await anyio.to_thread.run_sync(self._load_blocking, info)
            except ModelhostError as exc:
                entry.state, entry.reason = ModelState.FAILED, exc.message
                raise
            except Exception as exc:
                entry.state, entry.reason = ModelState.FAILED, f"{type(exc).__name__}: {exc}"
                log.exception("loading %s version %s failed", info.model, info.version)
                raise ModelNotReady(
                    f"model '{info.model}' version {info.version} failed to load: {entry.reason}"
                ) from exc
            entry.state, entry.loaded_at = ModelState.READY, time.time()
            log.info("loaded %s version %s (%s)", info.model, info.version, info.runtime)
            return entry

    def _load_blocking(self, info: VersionInfo) -> Runtime:
        path = self.registry.artifact_path(info)  # verifies the sha256 pin
        runtime = runtime_by_name(info.runtime)(path, info.signature, self.settings)
        runtime.load()
        return runtime

    async def unload(self, key: Key, *, hold: bool = True) -> bool:
        """Unload one version; with ``hold`` lazy loading will not bring it back by itself."""
        if hold:
            self._held_back.add(key)
        entry = self._models.pop(key, None)
        if entry is None:
            return False
        async with entry.lock:
            runtime, entry.runtime = entry.runtime, None
            entry.state = ModelState.UNAVAILABLE
            if runtime is not None:
                await anyio.to_thread.run_sync(runtime.unload)
        log.info("unloaded %s version %s", *key)
        return True

    async def ensure(self, info: VersionInfo) -> LoadedModel:
        """The ready model for ``info``; loads it now when lazy loading is on."""
        entry = self._models.get((info.model, info.version))
        if entry is not None and entry.state is ModelState.READY:
            return entry
        key = (info.model, info.version)
        if key in self._held_back or (
            not self.settings.lazy_load and (entry is None or entry.state is not ModelState.LOADING)
        ):
            raise ModelNotReady(
                f"model '{info.model}' version {info.version} is not loaded; load it with "
                f"POST /v2/repository/models/{info.model}/load"
            )
        return await self.load(info)

    async def unload_all(self) -> None:
        for key in list(self._models):
            await self.unload(key, hold=False)
