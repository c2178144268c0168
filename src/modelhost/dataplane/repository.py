"""Loaded models: load (with warm-up) / unload (with drain), lazy load, LRU memory budget, and the
per-model execution path (batcher, worker processes)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import anyio
import numpy as np

from modelhost.config import Settings
from modelhost.dataplane.batching import Activity, Batcher, PredictFn
from modelhost.dataplane.modelthread import ModelThread
from modelhost.dataplane.workers import WorkerPool
from modelhost.errors import ModelhostError, ModelNotReady
from modelhost.monitoring.metrics import Metrics
from modelhost.registry import DeploymentInfo, Registry, VersionInfo
from modelhost.runtimes import Runtime, runtime_by_name
from modelhost.runtimes.base import DATATYPE_TO_NUMPY

log = logging.getLogger(__name__)

Key = tuple[str, int]
T = TypeVar("T")


class ModelState(StrEnum):
    READY = "READY"
    LOADING = "LOADING"
    UNLOADING = "UNLOADING"
    UNAVAILABLE = "UNAVAILABLE"
    FAILED = "FAILED"


@dataclass
class LoadedModel:
    info: VersionInfo
    state: ModelState = ModelState.LOADING
    runtime: Runtime | None = None
    batcher: Batcher | None = None
    reason: str = ""
    loaded_at: float = 0.0
    load_seconds: float = 0.0
    last_used: float = 0.0
    inflight: int = 0
    explicit: bool = False  # loaded by an operator: never evicted or swapped out automatically
    busy: dict[int, int] = field(default_factory=dict)  # unbatched calls running, by id(runtime)
    # The one thread a ``single_thread`` runtime is loaded, called and unloaded on (None: any thread).
    executor: ModelThread | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def key(self) -> Key:
        return (self.info.model, self.info.version)


def _batchable(info: VersionInfo) -> bool:
    return bool(info.signature.inputs) and all(s.shape and s.shape[0] == -1 for s in info.signature.inputs)


def _warmup_inputs(info: VersionInfo) -> dict[str, np.ndarray] | None:
    """One all-zero row per input, when every shape is known; None when it cannot be built."""
    inputs: dict[str, np.ndarray] = {}
    for spec in info.signature.inputs:
        if any(d < 0 for d in spec.shape[1:]) or spec.datatype == "BYTES":
            return None
        inputs[spec.name] = np.zeros((1, *spec.shape[1:]), dtype=DATATYPE_TO_NUMPY[spec.datatype])
    return inputs


class ModelRepository:
    def __init__(self, registry: Registry, settings: Settings, metrics: Metrics | None = None) -> None:
        self.registry = registry
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._models: dict[Key, LoadedModel] = {}
        self.activity = Activity()  # requests in flight server-wide; the app and the gRPC servicer count them
        # Versions an operator unloaded on purpose: lazy loading leaves them alone until loaded again.
        self._held_back: set[Key] = set()
        self.metrics.add_callback("modelhost_models_loaded", "Loaded model versions by state.", ["state"],
                                  self._count_states)  # fmt: skip
        self.metrics.add_callback("modelhost_queue_depth", "Requests waiting for a batch.", ["model", "version"],
                                  self._queue_depths)  # fmt: skip
        self.metrics.add_callback("modelhost_model_busy_seconds", "Seconds a batched model version has spent "
                                  "predicting since it was loaded (its growth over wall time is the model's "
                                  "utilisation).", ["model", "version"], self._busy)  # fmt: skip
        self.metrics.add_callback("modelhost_model_busy_cpu_seconds", "CPU seconds of the thread calling a "
                                  "batched model's predict (below modelhost_model_busy_seconds when the model "
                                  "waits for a core).", ["model", "version"], self._busy_cpu)  # fmt: skip
        self.metrics.add_callback("modelhost_inflight_requests", "Requests being served.", ["model", "version"],
                                  lambda: [([e.info.model, str(e.info.version)], e.inflight) for e in self.loaded()])  # fmt: skip
        self.metrics.add_callback("modelhost_worker_restarts", "Worker process restarts of a loaded version.",
                                  ["model", "version"], self._restarts)  # fmt: skip
        self.metrics.add_callback("modelhost_llm_sequences", "LLM sequences by state (running, waiting).",
                                  ["model", "version", "state"], self._llm_sequences)  # fmt: skip
        self.metrics.add_callback("modelhost_llm_kv_cache_usage_ratio", "Share of an LLM's sequence slots "
                                  "(each with its KV cache) in use.", ["model", "version"], self._llm_kv_usage)  # fmt: skip

    def _llm_sequences(self) -> list[tuple[list[str], float]]:
        out: list[tuple[list[str], float]] = []
        for e in self.loaded():
            scheduler = getattr(e.runtime, "scheduler", None)
            stats = getattr(scheduler, "stats", None)
            if callable(stats):
                counts = stats()
                for state in ("running", "waiting"):
                    out.append(([e.info.model, str(e.info.version), state], float(counts.get(state, 0))))
        return out

    def _llm_kv_usage(self) -> list[tuple[list[str], float]]:
        out: list[tuple[list[str], float]] = []
        for e in self.loaded():
            scheduler = getattr(e.runtime, "scheduler", None)
            if scheduler is not None and callable(getattr(scheduler, "stats", None)):
                slots = max(1, int(getattr(scheduler, "max_seqs", 1)))
                out.append(([e.info.model, str(e.info.version)], scheduler.stats().get("running", 0) / slots))
        return out

    def _count_states(self) -> list[tuple[list[str], float]]:
        counts = {state: 0 for state in ModelState}
        for entry in self.loaded():
            counts[entry.state] += 1
        return [([str(state)], n) for state, n in counts.items()]

    def _queue_depths(self) -> list[tuple[list[str], float]]:
        return [
            ([e.info.model, str(e.info.version)], e.batcher.queue_depth) for e in self.loaded() if e.batcher
        ]

    def _busy(self) -> list[tuple[list[str], float]]:
        return [([e.info.model, str(e.info.version)], e.batcher.stats.busy_seconds)
                for e in self.loaded() if e.batcher]  # fmt: skip

    def _busy_cpu(self) -> list[tuple[list[str], float]]:
        return [([e.info.model, str(e.info.version)], e.batcher.stats.busy_cpu_seconds)
                for e in self.loaded() if e.batcher]  # fmt: skip

    def _restarts(self) -> list[tuple[list[str], float]]:
        return [([e.info.model, str(e.info.version)], e.runtime.restarts) for e in self.loaded()
                if isinstance(e.runtime, WorkerPool)]  # fmt: skip

    def _on_batch(self, info: VersionInfo, rows: int, requests: int, queued: float) -> None:
        m, version = self.metrics, str(info.version)
        m.child(m.batch_size, info.model, version).observe(rows)
        m.child(m.batch_requests, info.model, version).observe(requests)
        m.child(m.queue_time, info.model, version).observe(queued)

    def get(self, key: Key) -> LoadedModel | None:
        return self._models.get(key)

    def loaded(self) -> list[LoadedModel]:
        return list(self._models.values())

    async def load(self, info: VersionInfo, *, explicit: bool = False) -> LoadedModel:
        """Load (and warm up) one version; no-op when ready; concurrent calls share one load."""
        key = (info.model, info.version)
        self._held_back.discard(key)
        entry = self._models.get(key)
        if entry is None or entry.state is ModelState.UNLOADING:
            entry = LoadedModel(info=info)
            self._models[key] = entry
        entry.explicit = entry.explicit or explicit
        async with entry.lock:
            if entry.state is ModelState.READY:
                return entry
            entry.state, entry.reason = ModelState.LOADING, ""
            await self._make_room(info)
            started = time.perf_counter()
            try:
                deployment = await anyio.to_thread.run_sync(self.registry.get_deployment, info.model)
                entry.executor = self._confinement(info, deployment)
                entry.runtime = await self._on_thread(entry, self._load_blocking, info, deployment)
                entry.batcher = self._make_batcher(entry, deployment)
            except ModelhostError as exc:
                self._drop_thread(entry)
                entry.state, entry.reason = ModelState.FAILED, exc.message
                self.metrics.loads.labels(info.model, "failed").inc()
                raise
            except Exception as exc:
                self._drop_thread(entry)
                entry.state, entry.reason = ModelState.FAILED, f"{type(exc).__name__}: {exc}"
                self.metrics.loads.labels(info.model, "failed").inc()
                log.exception("loading %s version %s failed", info.model, info.version)
                raise ModelNotReady(
                    f"model '{info.model}' version {info.version} failed to load: {entry.reason}"
                ) from exc
            entry.state, entry.loaded_at = ModelState.READY, time.time()
            entry.load_seconds = time.perf_counter() - started
            self.metrics.loads.labels(info.model, "loaded").inc()
            self.metrics.load_time.labels(info.model).observe(entry.load_seconds)
            entry.last_used = time.monotonic()
            log.info(
                "loaded %s version %s (%s) in %.2fs",
                info.model,
                info.version,
                info.runtime,
                entry.load_seconds,
            )
            return entry

    def _confinement(self, info: VersionInfo, deployment: DeploymentInfo) -> ModelThread | None:
        """A dedicated thread for a ``single_thread`` runtime served in this process."""
        workers = deployment.workers if deployment.workers is not None else self.settings.workers
        if workers > 0 or not runtime_by_name(info.runtime).single_thread:
            return None
        return ModelThread(f"modelhost-{info.model}-v{info.version}")

    @staticmethod
    def _drop_thread(entry: LoadedModel) -> None:
        if entry.executor is not None:
            entry.executor.shutdown()
            entry.executor = None

    async def _on_thread(self, entry: LoadedModel, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the model's own thread when it has one, else on a worker thread."""
        if entry.executor is not None:
            return await entry.executor.run(fn, *args)
        return await anyio.to_thread.run_sync(fn, *args)

    def _load_blocking(self, info: VersionInfo, deployment: DeploymentInfo) -> Runtime:
        path = self.registry.artifact_path(info)  # verifies the sha256 pin
        cls = runtime_by_name(info.runtime)
        workers = self._wanted_workers(deployment)
        runtime: Runtime = (
            WorkerPool(cls, path, info.signature, self.settings, workers) if workers > 0 and not cls.remote
            else cls(path, info.signature, self.settings)
        )  # fmt: skip
        runtime.load()
        self._warm_up(info, runtime)
        return runtime

    def _warm_up(self, info: VersionInfo, runtime: Runtime) -> None:
        """One all-zero row through a freshly loaded model, before it takes traffic (best effort)."""
        warm = _warmup_inputs(info) if self.settings.warmup else None
        if warm is not None:
            try:
                runtime.predict(warm, [s.name for s in info.signature.outputs])
            except Exception as exc:  # a model may reject zeros; warming is best effort
                log.info("warm-up of %s version %s skipped: %s", info.model, info.version, exc)

    def _make_batcher(self, entry: LoadedModel, deployment: DeploymentInfo) -> Batcher | None:
        size = deployment.max_batch_size or self.settings.max_batch_size
        cap = runtime_by_name(entry.info.runtime).default_max_batch_size
        if deployment.max_batch_size is None and cap is not None:
            size = min(size, cap)
        if size <= 1 or not _batchable(entry.info) or entry.runtime is None:
            return None
        wait = deployment.max_wait_ms if deployment.max_wait_ms is not None else self.settings.max_wait_ms
        parallel = entry.runtime.size
        info = entry.info
        pool = isinstance(entry.runtime, WorkerPool)
        return Batcher(
            entry.runtime.predict, max_batch_size=size, max_wait_ms=wait, parallel=parallel,
            on_batch=lambda rows, reqs, queued: self._on_batch(info, rows, reqs, queued),
            inline_below_s=0.0 if pool else self.settings.inline_predict_us / 1e6,
            settle_ticks=self.settings.batch_settle_ticks, executor=entry.executor,
            activity=self.activity, inline_lone_s=0.0 if pool else self.settings.inline_lone_ms / 1e3,
        )  # fmt: skip

    async def predict(self, entry: LoadedModel, inputs: dict[str, np.ndarray], outputs: Sequence[str],
                      *, call: PredictFn | None = None, key: Hashable = None) -> dict[str, np.ndarray]:  # fmt: skip
        """Run one request on a ready model, through its batcher when it has one. ``call`` and ``key``:
        see ``Batcher.submit`` (task routes pass options such as a language pair this way)."""
        runtime = entry.runtime
        if runtime is None or entry.state is not ModelState.READY:
            raise ModelNotReady(f"model '{entry.info.model}' version {entry.info.version} is not loaded")
        entry.inflight += 1
        entry.last_used = time.monotonic()
        try:
            if entry.batcher is not None:
                return await entry.batcher.submit(inputs, outputs, call=call, key=key)
            rows = next(iter(inputs.values())).shape[0] if inputs else 1
            m = self.metrics
            m.child(m.batch_size, entry.info.model, str(entry.info.version)).observe(rows)
            # counted per runtime, so a worker roll unloads the old one only when its calls are done
            entry.busy[id(runtime)] = entry.busy.get(id(runtime), 0) + 1
            try:
                return await self._on_thread(entry, call or runtime.predict, inputs, outputs)
            finally:
                if (left := entry.busy[id(runtime)] - 1) > 0:
                    entry.busy[id(runtime)] = left
                else:
                    del entry.busy[id(runtime)]
        finally:
            entry.inflight -= 1

    async def unload(self, key: Key, *, hold: bool = True) -> bool:
        """Drain in-flight requests, then unload; with ``hold`` lazy loading will not bring it back."""
        if hold:
            self._held_back.add(key)
        entry = self._models.get(key)
        if entry is None:
            return False
        async with entry.lock:
            if self._models.get(key) is entry:
                del self._models[key]
            entry.state = ModelState.UNLOADING
            deadline = time.monotonic() + self.settings.drain_timeout_s
            while entry.inflight > 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            if entry.batcher is not None:
                await entry.batcher.close(self.settings.drain_timeout_s)
            runtime, entry.runtime = entry.runtime, None
            entry.state = ModelState.UNAVAILABLE
            if runtime is not None:
                await self._on_thread(entry, runtime.unload)
            self._drop_thread(entry)
        self.metrics.unloads.labels(key[0]).inc()
        log.info("unloaded %s version %s", *key)
        return True

    async def reconfigure(self, model: str) -> None:
        """Apply a changed deployment to the loaded versions of ``model`` without dropping a request.
        Batching changes: new requests go to a new batcher while the old one drains. A change of
        ``workers`` rolls the runtime: the new one (its worker processes) is loaded and warmed up
        while the old one serves, then both switch at once, and the old one is drained and unloaded."""
        entries = [e for e in self._models.values() if e.info.model == model and e.state is ModelState.READY]
        if not entries:
            return
        deployment = await anyio.to_thread.run_sync(self.registry.get_deployment, model)
        for entry in entries:
            # under the entry's lock: a concurrent reconfigure (an admin PATCH and a route refresh
            # noticing the same change) waits until this one has fully drained and unloaded
            async with entry.lock:
                if entry.state is not ModelState.READY or entry.runtime is None:
                    continue  # unloaded meanwhile; the next load reads the new deployment
                if self._workers_of(entry.runtime) != self._wanted_workers(deployment):
                    await self._roll(entry, deployment)
                    continue
                old = entry.batcher
                entry.batcher = self._make_batcher(entry, deployment)
                if old is not None:
                    await old.close(self.settings.drain_timeout_s)

    def _wanted_workers(self, deployment: DeploymentInfo) -> int:
        return deployment.workers if deployment.workers is not None else self.settings.workers

    @staticmethod
    def _workers_of(runtime: Runtime | None) -> int:
        return runtime.size if isinstance(runtime, WorkerPool) else 0

    async def _roll(self, entry: LoadedModel, deployment: DeploymentInfo) -> None:
        """Replace a ready entry's runtime (the caller holds ``entry.lock``)."""
        old_runtime, old_batcher, old_executor = entry.runtime, entry.batcher, entry.executor
        assert old_runtime is not None
        executor = self._confinement(entry.info, deployment)  # a single-thread engine in-process
        try:
            if executor is not None:
                fresh = await executor.run(self._load_blocking, entry.info, deployment)
            else:
                fresh = await anyio.to_thread.run_sync(self._load_blocking, entry.info, deployment)
        except BaseException:
            if executor is not None:
                executor.shutdown()
            raise
        # the switch: requests from now on use the new runtime (on its own thread, if it has one)
        entry.runtime, entry.executor = fresh, executor
        entry.batcher = self._make_batcher(entry, deployment)
        log.info("%s version %s: %d -> %d worker processes", *entry.key,
                 self._workers_of(old_runtime), self._workers_of(fresh))  # fmt: skip
        if old_batcher is not None:
            await old_batcher.close(self.settings.drain_timeout_s)
        deadline = time.monotonic() + self.settings.drain_timeout_s
        while entry.busy.get(id(old_runtime), 0) > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if old_executor is not None:
            await old_executor.run(old_runtime.unload)
            old_executor.shutdown()
        else:
            await anyio.to_thread.run_sync(old_runtime.unload)

    async def ensure(self, info: VersionInfo) -> LoadedModel:
        """The ready model for ``info``; loads it now when lazy loading is on."""
        key = (info.model, info.version)
        entry = self._models.get(key)
        if entry is not None and entry.state is ModelState.READY:
            return entry
        if key in self._held_back or (
            not self.settings.lazy_load and (entry is None or entry.state is not ModelState.LOADING)
        ):
            raise ModelNotReady(
                f"model '{info.model}' version {info.version} is not loaded; load it with "
                f"POST /v2/repository/models/{info.model}/load"
            )
        return await self.load(info)

    async def _make_room(self, info: VersionInfo) -> None:
        """Unload least-recently-used idle models until ``info`` fits the memory budget."""
        budget = self.settings.memory_budget_mb * 1024 * 1024
        if budget <= 0:
            return

        def used() -> int:
            return sum(e.info.size_bytes for e in self._models.values() if e.state is ModelState.READY)

        candidates = sorted(
            (e for e in self._models.values()
             if e.state is ModelState.READY and not e.explicit and e.key != (info.model, info.version)),
            key=lambda e: e.last_used,
        )  # fmt: skip
        for victim in candidates:
            if used() + info.size_bytes <= budget:
                break
            if victim.inflight == 0:
                log.info("memory budget: evicting %s version %s (least recently used)", *victim.key)
                await self.unload(victim.key, hold=False)

    async def unload_all(self) -> None:
        for key in list(self._models):
            await self.unload(key, hold=False)
