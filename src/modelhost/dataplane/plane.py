"""DataPlane: route a model reference to a version, validate the request against its signature, predict.

Hot swap: routes are cached and refreshed in the background; a refresh that finds a new target loads
and warms it first, then switches the route, then drains and unloads versions no route serves any more
— so clients hammering ``name@alias`` while the alias moves see no failed request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable, Sequence
from typing import Any, TypeVar, cast

import anyio
import numpy as np

from modelhost import __version__
from modelhost.config import Settings
from modelhost.dataplane.batching import Activity, PredictFn
from modelhost.dataplane.graph import run_graph
from modelhost.dataplane.repository import LoadedModel, ModelRepository, ModelState
from modelhost.dataplane.routing import Route, build_route
from modelhost.dataplane.types import InferenceRequest, InferenceResponse, Tensor
from modelhost.errors import InvalidInput, ModelhostError, ModelNotReady, PayloadTooLarge, RequestTimeout
from modelhost.monitoring.drift import DriftReport, compute_drift
from modelhost.monitoring.metrics import Metrics
from modelhost.monitoring.predlog import PredictionLogger
from modelhost.registry import DeploymentInfo, Registry, VersionInfo
from modelhost.registry.records import parse_model_ref
from modelhost.runtimes.base import PARAMETERS_INPUT, Runtime, Signature, datatype_of, parameters_column
from modelhost.runtimes.graph import GraphRuntime

R = TypeVar("R", bound=Runtime)

log = logging.getLogger(__name__)

EXTENSIONS = ["model_repository", "binary_tensor_data"]
PLATFORMS = {
    "sklearn": "sklearn_skops",
    "onnx": "onnxruntime_onnx",
    "llm": "transformers_llm",
    "embeddings": "sentence_transformers",
    "whisper": "faster_whisper_ctranslate2",
    "translation": "bergamot",
    "image-classifier": "onnxruntime_image_classifier",
    "graph": "modelhost_graph",
}
RouteKey = tuple[str, str | None]


def _shape_fits(expected: tuple[int, ...], got: tuple[int, ...]) -> bool:
    return len(expected) == len(got) and all(e in (-1, g) for e, g in zip(expected, got, strict=True))


def _execution(d: DeploymentInfo | None) -> tuple[object, ...]:
    """The deployment settings that shape a loaded version's execution (batching, workers)."""
    return (None, None, None) if d is None else (d.max_batch_size, d.max_wait_ms, d.workers)


def validate_inputs(signature: Signature, request: InferenceRequest) -> dict[str, np.ndarray]:
    """Check names, datatypes and shapes against the signature; return the input arrays by name."""
    given: dict[str, Tensor] = {}
    for t in request.inputs:
        if t.name in given:
            raise InvalidInput(f"input '{t.name}' is given more than once")
        given[t.name] = t
    expected = {s.name for s in signature.inputs}
    unknown = sorted(set(given) - expected)
    if unknown:
        raise InvalidInput(
            f"unknown input(s) {', '.join(map(repr, unknown))}; the model takes {', '.join(map(repr, sorted(expected)))}"
        )
    arrays: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        found = given.get(spec.name)
        if found is None:
            raise InvalidInput(f"missing input '{spec.name}' ({spec.datatype} {list(spec.shape)})")
        if found.datatype != spec.datatype:
            raise InvalidInput(
                f"input '{spec.name}' has datatype {found.datatype}, but the model expects {spec.datatype}"
            )
        if not _shape_fits(spec.shape, found.shape):
            raise InvalidInput(
                f"input '{spec.name}' has shape {list(found.shape)}, but the model expects {list(spec.shape)} (-1 = any)"
            )
        arrays[spec.name] = found.data
    return arrays


def requested_outputs(signature: Signature, request: InferenceRequest) -> list[str]:
    if not request.outputs:
        return [s.name for s in signature.outputs]
    names = [o.name for o in request.outputs]
    known = {s.name for s in signature.outputs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInput(
            f"unknown output(s) {', '.join(map(repr, unknown))}; the model gives {', '.join(map(repr, sorted(known)))}"
        )
    if len(set(names)) != len(names):
        raise InvalidInput("an output is requested more than once")
    return names


class DataPlane:
    def __init__(self, registry: Registry, repository: ModelRepository, settings: Settings,
                 predlog: PredictionLogger | None = None) -> None:  # fmt: skip
        self.registry = registry
        self.repository = repository
        # Requests in flight server-wide (the app and the gRPC servicer count them; the repository's
        # batchers read them); a repository without batchers (Ray Serve) gets one nobody reads.
        self.activity: Activity = getattr(repository, "activity", None) or Activity()
        self.settings = settings
        self.metrics: Metrics = repository.metrics
        self.predlog = predlog or PredictionLogger(registry, settings.prediction_log_rate, self.metrics)
        self.started = False
        self._routes: dict[RouteKey, Route] = {}
        self._refreshing: dict[RouteKey, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()

    # --- health and metadata --------------------------------------------------------------------

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        """Started; with MODELHOST_STRICT_READINESS also no loaded version in the FAILED state."""
        return self.started and not (self.settings.strict_readiness and self.failed_models())

    def failed_models(self) -> list[str]:
        return [f"{e.info.model}/{e.info.version}: {e.reason}" for e in self.repository.loaded()
                if e.state is ModelState.FAILED]  # fmt: skip

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "modelhost", "version": __version__, "extensions": EXTENSIONS}

    # --- routing and hot swap ----------------------------------------------------------------------

    async def _build(self, key: RouteKey) -> Route:
        expires = time.monotonic() + self.settings.resolve_cache_s
        return await anyio.to_thread.run_sync(build_route, self.registry, key[0], key[1], expires)

    async def route(self, ref: str, version: str | None = None) -> Route:
        key = (ref, version)
        current = self._routes.get(key)
        if current is None:
            current = await self._build(key)
            self._routes[key] = current
        elif current.expires <= time.monotonic() and key not in self._refreshing:
            task = asyncio.create_task(self._refresh(key))
            self._refreshing[key] = task
            task.add_done_callback(lambda _t, k=key: self._refreshing.pop(k, None))  # type: ignore[misc]
        return current

    async def resolve(self, ref: str, version: str | None = None) -> VersionInfo:
        return (await self.route(ref, version)).primary

    async def _refresh(self, key: RouteKey) -> None:
        """Re-resolve one route; warm any new target before switching to it, then collect old ones."""
        old = self._routes.get(key)
        try:
            new = await self._build(key)
        except ModelhostError as exc:  # alias deleted, model gone: drop the route, requests re-resolve
            log.info("route %s no longer resolves: %s", key, exc.message)
            self._routes.pop(key, None)
            return
        serving = old is not None and any(
            (e := self.repository.get((old.primary.model, v))) is not None and e.state is ModelState.READY
            for v in old.versions()
        )
        if serving:
            for target in (new.primary, new.canary):
                if target is not None and (old is None or target.version not in old.versions()):
                    try:
                        await self.repository.load(target)
                    except ModelhostError as exc:
                        log.error("hot swap of %s to version %s failed, keeping the old route: %s",
                                  key[0], target.version, exc.message)  # fmt: skip
                        if old is not None:
                            self._routes[key] = Route(
                                old.primary, old.canary, old.percent, new.expires, old.deployment
                            )
                        return
        self._routes[key] = new
        if old is not None and _execution(old.deployment) != _execution(new.deployment):
            # batching or workers changed by another process (the CLI, a replica): apply it here too
            task = asyncio.create_task(self.repository.reconfigure(new.primary.model))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if old is not None and old.versions() != new.versions():
            log.info(
                "%s now serves version(s) %s (was %s)", key[0], sorted(new.versions()), sorted(old.versions())
            )
            self._collect(new.primary.model)

    def _collect(self, model: str) -> None:
        """Drain and unload versions of ``model`` that no route serves (operator-loaded ones stay)."""
        live = {
            v
            for (ref, _), r in self._routes.items()
            if parse_model_ref(ref)[0] == model
            for v in r.versions()
        }
        for entry in self.repository.loaded():
            if entry.info.model == model and not entry.explicit and entry.info.version not in live:
                task = asyncio.create_task(self.repository.unload(entry.key, hold=False))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def on_registry_change(self, model: str) -> None:
        """An alias or deployment of ``model`` changed through this server: swap its routes now."""
        keys = [k for k in self._routes if parse_model_ref(k[0])[0] == model]
        for key in keys:
            await self._refresh(key)
        await self.repository.reconfigure(model)

    async def model_metadata(self, ref: str, version: str | None = None) -> dict[str, Any]:
        info = await self.resolve(ref, version)
        versions = await anyio.to_thread.run_sync(self.registry.list_versions, info.model)
        parameters: dict[str, Any] = {
            "version": str(info.version),
            "aliases": list(info.aliases),
            "sha256": info.sha256,
        }
        declared = info.signature.extra.get("parameters")
        if isinstance(declared, dict):  # request parameters the model takes (OIP `parameters`)
            parameters["request_parameters"] = declared
        return {
            "name": ref,
            "versions": [str(v.version) for v in versions],
            "platform": PLATFORMS.get(info.runtime, info.runtime),
            "inputs": [t.to_dict() for t in info.signature.inputs],
            "outputs": [t.to_dict() for t in info.signature.outputs],
            "parameters": parameters,
        }

    async def model_ready(self, ref: str, version: str | None = None) -> tuple[VersionInfo, bool]:
        info = await self.resolve(ref, version)
        entry = self.repository.get((info.model, info.version))
        return info, entry is not None and entry.state is ModelState.READY

    # --- repository extension ---------------------------------------------------------------------

    async def repository_index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        models = await anyio.to_thread.run_sync(self.registry.list_models)
        out: list[dict[str, Any]] = []
        for m in models:
            for v in await anyio.to_thread.run_sync(self.registry.list_versions, m.name):
                entry = self.repository.get((m.name, v.version))
                state = entry.state if entry is not None else ModelState.UNAVAILABLE
                if ready_only and state is not ModelState.READY:
                    continue
                reason = entry.reason if entry is not None else ""
                out.append({"name": m.name, "version": str(v.version), "state": str(state), "reason": reason})
        return out

    async def load(self, ref: str, version: str | None = None) -> LoadedModel:
        """Operator load: the version stays loaded until unloaded explicitly."""
        return await self.repository.load(await self.resolve(ref, version), explicit=True)

    async def unload(self, ref: str, version: str | None = None) -> list[int]:
        """Unload ``name`` (every loaded version), ``name@alias`` or one version; returns versions unloaded."""
        name, alias = parse_model_ref(ref)
        if alias is None and version is None:
            versions = await anyio.to_thread.run_sync(self.registry.list_versions, name)  # 404 if unknown
            keys = [(name, v.version) for v in versions]
        else:
            info = await self.resolve(ref, version)
            keys = [(info.model, info.version)]
        done = [k[1] for k in keys if await self.repository.unload(k)]
        if not done and (alias is not None or version is not None):
            raise InvalidInput(f"model '{ref}' version {keys[0][1]} is not loaded")
        return done

    async def load_defaults(self) -> list[str]:
        """Route and load each registered model's default version; failures are logged, not fatal."""
        failed: list[str] = []
        for m in await anyio.to_thread.run_sync(self.registry.list_models):
            if m.latest_version is None:
                continue
            try:
                route = await self.route(m.name)
                for target in (route.primary, route.canary):
                    if target is not None:
                        await self.repository.load(target)
            except ModelhostError as exc:
                failed.append(f"{m.name}: {exc.message}")
        return failed

    async def close(self) -> None:
        for task in [*self._refreshing.values(), *self._background]:
            task.cancel()
        await self.predlog.close()
        await self.repository.unload_all()

    # --- drift -------------------------------------------------------------------------------------

    async def drift(self, ref: str, version: str | None = None, limit: int = 5000) -> DriftReport:
        """Drift report of the version ``ref`` serves; updates the drift gauges and fires the alert hook."""
        await self.predlog.flush()
        info = await self.resolve(ref, version)
        report = await anyio.to_thread.run_sync(compute_drift, self.registry, info, limit)
        for f in report.features:
            value = f.score if f.test != "chi2" else f.p_value
            self.metrics.drift.labels(info.model, str(info.version), f.feature, f.test).set(value)
        if report.drifted:
            self.metrics.drift_alerts.labels(info.model, str(info.version)).inc()
            if self.settings.drift_webhook_url:
                task = asyncio.create_task(self._alert(report))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        return report

    async def _alert(self, report: DriftReport) -> None:
        import httpx

        try:
            async with httpx.AsyncClient(timeout=10) as client:
                await client.post(
                    str(self.settings.drift_webhook_url), json={"event": "drift", **report.to_dict()}
                )
        except httpx.HTTPError as exc:
            log.warning("drift alert to %s failed: %s", self.settings.drift_webhook_url, exc)

    # --- LLM and embeddings (the OpenAI-compatible routes) --------------------------------------------

    async def runtime_of(self, ref: str, runtime_type: type[R]) -> tuple[VersionInfo, R]:
        """The loaded runtime serving ``ref``; InvalidInput when it is not of ``runtime_type``."""
        info = await self.resolve(ref)
        # A runtime of another kind may serve the endpoint too when its signature says it can
        # (``extra["serves"]``) and it has the same methods (a transformers-pipeline translator).
        stands_in = runtime_type.name in info.signature.extra.get("serves", ())
        if info.runtime != runtime_type.name and not stands_in:
            raise InvalidInput(
                f"model '{ref}' is a {info.runtime} model; this endpoint serves {runtime_type.name} models"
            )
        entry = await self.repository.ensure(info)
        runtime = entry.runtime
        if runtime is None or not (isinstance(runtime, runtime_type) or stands_in):
            raise ModelNotReady(f"model '{info.model}' version {info.version} was unloaded")
        return info, cast(R, runtime)

    async def task_predict(
        self,
        info: VersionInfo,
        inputs: dict[str, np.ndarray],
        outputs: Sequence[str],
        *,
        call: PredictFn | None = None,
        key: Hashable = None,
    ) -> dict[str, np.ndarray]:
        """A task route's request on ``info`` (from ``runtime_of``), through the model's adaptive
        batcher, so concurrent requests of several clients share engine calls; ``call``/``key``: see
        ``Batcher.submit``. Counted and timed like an inference (protocol ``tasks``)."""
        started = time.perf_counter()
        m, version = self.metrics, str(info.version)
        status = "200"
        try:
            entry = await self.repository.ensure(info)
            result = await self._predict(entry, inputs, outputs, call=call, key=key)
        except ModelhostError as exc:
            status = str(exc.status_code)
            raise
        except Exception:
            status = "500"
            raise
        finally:  # cached label children, as in ``infer``: the translation fast path is as hot
            m.child(m.requests, info.model, version, "tasks", status).inc()
            m.child(m.latency, info.model, version, "tasks").observe(time.perf_counter() - started)
        m.child(m.rows, info.model, version).inc(next(iter(inputs.values())).shape[0] if inputs else 1)
        return result

    async def _predict(
        self,
        entry: LoadedModel,
        inputs: dict[str, np.ndarray],
        outputs: Sequence[str],
        *,
        call: PredictFn | None = None,
        key: Hashable = None,
    ) -> dict[str, np.ndarray]:
        """``repository.predict`` within MODELHOST_REQUEST_TIMEOUT_S (a 504 past it)."""
        timeout = self.settings.request_timeout_s
        runtime = entry.runtime
        try:
            # asyncio.timeout, not wait_for: no extra task per request on the hot path
            async with asyncio.timeout(timeout):
                if runtime is not None and runtime.prepares and entry.batcher is not None and entry.inflight:
                    # Per-request decoding before the batch while other requests are in the model; a
                    # request alone runs at once, and its predict decodes it (one thread hop, not two).
                    loop = asyncio.get_running_loop()
                    inputs = await loop.run_in_executor(None, runtime.prepare, inputs)
                return await self.repository.predict(entry, inputs, outputs, call=call, key=key)
        except TimeoutError:
            raise RequestTimeout(
                f"model '{entry.info.model}' version {entry.info.version} did not answer within "
                f"{timeout:g} s (MODELHOST_REQUEST_TIMEOUT_S)"
            ) from None

    # --- inference ----------------------------------------------------------------------------------

    async def infer(
        self,
        ref: str,
        version: str | None,
        request: InferenceRequest,
        routing_key: str | None = None,
        protocol: str = "rest",
    ) -> InferenceResponse:
        """Route, validate and predict, recording metrics and a prediction-log sample.
        ``routing_key`` (or the request parameter ``routing_key``) makes a canary split sticky."""
        started = time.perf_counter()
        info: VersionInfo | None = None
        status = "200"
        try:
            key = routing_key or request.parameters.get("routing_key")
            route = await self.route(ref, version)
            info = route.choose(str(key) if key is not None else None)
            response = await self._infer(info, ref, request)
        except ModelhostError as exc:
            status = str(exc.status_code)
            raise
        except Exception:
            status = "500"
            raise
        finally:
            if info is not None:  # unknown models are not labels: clients must not create series
                m, version = self.metrics, str(info.version)
                m.child(m.requests, info.model, version, protocol, status).inc()
                m.child(m.latency, info.model, version, protocol).observe(time.perf_counter() - started)
        return response

    def count_rejected(self, ref: str, version: str | None, protocol: str, status: int) -> None:
        """Count a request a protocol adapter refused before inference (an undecodable body). Only
        references already routed are labelled, so junk model names create no series."""
        route = self._routes.get((ref, version))
        if route is not None:
            info = route.primary
            self.metrics.requests.labels(info.model, str(info.version), protocol, str(status)).inc()

    async def _infer(self, info: VersionInfo, ref: str, request: InferenceRequest) -> InferenceResponse:
        inputs = validate_inputs(info.signature, request)
        outputs = requested_outputs(info.signature, request)
        rows = next(iter(inputs.values())).shape[0] if inputs and next(iter(inputs.values())).ndim else 1
        if rows > self.settings.max_request_rows:
            raise PayloadTooLarge(
                f"the request has {rows} rows; the limit is {self.settings.max_request_rows} "
                "(MODELHOST_MAX_REQUEST_ROWS): split it into several requests"
            )
        entry = await self.repository.ensure(info)
        runtime = entry.runtime
        if runtime is None:
            raise ModelNotReady(f"model '{info.model}' version {info.version} was unloaded")
        if isinstance(runtime, GraphRuntime):
            response = await run_graph(self, info, runtime, inputs, outputs)
            response.model_name, response.id = ref, request.id
            return response
        model_inputs = inputs
        declared = info.signature.extra.get("parameters")
        if isinstance(declared, dict):  # the model takes request parameters (runtimes/base.py)
            model_inputs = {**inputs, PARAMETERS_INPUT: parameters_column(declared, request.parameters, rows)}
        try:
            result = await self._predict(entry, model_inputs, outputs)
        except ModelhostError:
            raise
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"the model rejected the input: {exc}") from exc
        except Exception as exc:
            if type(exc).__name__ in ("InvalidArgument", "Fail", "InvalidGraph"):  # onnxruntime input errors
                raise InvalidInput(f"the model rejected the input: {exc}") from exc
            raise
        self.metrics.child(self.metrics.rows, info.model, str(info.version)).inc(rows)
        self.predlog.maybe_log(info, request.id, inputs, result)
        tensors = []
        for name in outputs:
            array = result[name]
            tensors.append(
                Tensor(name=name, datatype=datatype_of(array), shape=tuple(array.shape), data=array)
            )
        return InferenceResponse(
            model_name=ref, model_version=str(info.version), outputs=tensors, id=request.id
        )
