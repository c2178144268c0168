"""DataPlane: resolve a model reference, validate a request against the signature, predict."""

from __future__ import annotations

import time
from typing import Any, TypeVar

import anyio
import numpy as np

from modelhost import __version__
from modelhost.config import Settings
from modelhost.dataplane.graph import run_graph
from modelhost.dataplane.repository import LoadedModel, ModelRepository, ModelState
from modelhost.dataplane.types import InferenceRequest, InferenceResponse, Tensor
from modelhost.errors import InvalidInput, ModelhostError, ModelNotReady
from modelhost.registry import Registry, VersionInfo
from modelhost.registry.service import parse_model_ref
from modelhost.runtimes.base import Runtime, Signature, datatype_of
from modelhost.runtimes.graph import GraphRuntime

R = TypeVar("R", bound=Runtime)

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


def _shape_fits(expected: tuple[int, ...], got: tuple[int, ...]) -> bool:
    return len(expected) == len(got) and all(e in (-1, g) for e, g in zip(expected, got, strict=True))


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
        t = found
        if t.datatype != spec.datatype:
            raise InvalidInput(
                f"input '{spec.name}' has datatype {t.datatype}, but the model expects {spec.datatype}"
            )
        if not _shape_fits(spec.shape, t.shape):
            raise InvalidInput(
                f"input '{spec.name}' has shape {list(t.shape)}, but the model expects {list(spec.shape)} (-1 = any)"
            )
        arrays[spec.name] = t.data
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
    def __init__(self, registry: Registry, repository: ModelRepository, settings: Settings) -> None:
        self.registry = registry
        self.repository = repository
        self.settings = settings
        self.started = False
        # (ref, version) -> (resolved version, expiry). Alias moves made in this process clear it;
        # moves made elsewhere (the CLI) are seen within resolve_cache_s.
        self._resolved: dict[tuple[str, str | None], tuple[VersionInfo, float]] = {}

    # --- health and metadata --------------------------------------------------------------------

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return self.started

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "modelhost", "version": __version__, "extensions": EXTENSIONS}

    async def resolve(self, ref: str, version: str | None = None) -> VersionInfo:
        key = (ref, version)
        hit = self._resolved.get(key)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        info = await anyio.to_thread.run_sync(self.registry.resolve, ref, version)
        self._resolved[key] = (info, now + self.settings.resolve_cache_s)
        return info

    def invalidate(self, model: str | None = None) -> None:
        if model is None:
            self._resolved.clear()
            return
        for key in [k for k in self._resolved if parse_model_ref(k[0])[0] == model]:
            del self._resolved[key]

    async def model_metadata(self, ref: str, version: str | None = None) -> dict[str, Any]:
        info = await self.resolve(ref, version)
        versions = await anyio.to_thread.run_sync(self.registry.list_versions, info.model)
        return {
            "name": ref,
            "versions": [str(v.version) for v in versions],
            "platform": PLATFORMS.get(info.runtime, info.runtime),
            "inputs": [t.to_dict() for t in info.signature.inputs],
            "outputs": [t.to_dict() for t in info.signature.outputs],
            "parameters": {
                "version": str(info.version),
                "aliases": list(info.aliases),
                "sha256": info.sha256,
            },
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
                out.append(
                    {
                        "name": m.name,
                        "version": str(v.version),
                        "state": str(state),
                        "reason": entry.reason if entry is not None else "",
                    }
                )
        return out

    async def load(self, ref: str, version: str | None = None) -> LoadedModel:
        return await self.repository.load(await self.resolve(ref, version))

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
        """Load each registered model's default version; failures are logged, not fatal."""
        failed: list[str] = []
        for m in await anyio.to_thread.run_sync(self.registry.list_models):
            if m.latest_version is None:
                continue
            try:
                await self.load(m.name)
            except ModelhostError as exc:
                failed.append(f"{m.name}: {exc.message}")
        return failed

    # --- LLM and embeddings (the OpenAI-compatible routes) --------------------------------------------

    async def runtime_of(self, ref: str, runtime_type: type[R]) -> tuple[VersionInfo, R]:
        """The loaded runtime serving ``ref``; InvalidInput when it is not of ``runtime_type``."""
        info = await self.resolve(ref)
        if info.runtime != runtime_type.name:
            raise InvalidInput(
                f"model '{ref}' is a {info.runtime} model; this endpoint serves {runtime_type.name} models"
            )
        entry = await self.repository.ensure(info)
        runtime = entry.runtime
        if not isinstance(runtime, runtime_type):
            raise ModelNotReady(f"model '{info.model}' version {info.version} was unloaded")
        return info, runtime

    # --- inference ----------------------------------------------------------------------------------

    async def infer(self, ref: str, version: str | None, request: InferenceRequest) -> InferenceResponse:
        info = await self.resolve(ref, version)
        inputs = validate_inputs(info.signature, request)
        outputs = requested_outputs(info.signature, request)
        entry = await self.repository.ensure(info)
        runtime = entry.runtime
        if runtime is None:
            raise ModelNotReady(f"model '{info.model}' version {info.version} was unloaded")
        if isinstance(runtime, GraphRuntime):
            response = await run_graph(self, info, runtime, inputs, outputs)
            response.model_name, response.id = ref, request.id
            return response
        try:
            result = await anyio.to_thread.run_sync(runtime.predict, inputs, outputs)
        except ModelhostError:
            raise
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"the model rejected the input: {exc}") from exc
        except Exception as exc:
            if type(exc).__name__ in ("InvalidArgument", "Fail", "InvalidGraph"):  # onnxruntime input errors
                raise InvalidInput(f"the model rejected the input: {exc}") from exc
            raise
        tensors = []
        for name in outputs:
            array = result[name]
            tensors.append(
                Tensor(name=name, datatype=datatype_of(array), shape=tuple(array.shape), data=array)
            )
        return InferenceResponse(
            model_name=ref, model_version=str(info.version), outputs=tensors, id=request.id
        )
