"""Ray Serve backend: each served model version runs as its own Ray Serve deployment.

The front stays ours: HTTP/gRPC protocols, routing (aliases, canaries, hot swap), request validation
and adaptive batching all run in the modelhost server exactly as with the local backend. Only the
``Runtime`` moves: ``RayModelRepository`` loads a ``RayRuntime`` whose ``predict`` forwards the batch to
the version's deployment, where ``ModelReplica`` runs the same runtime class (sklearn, onnx, ...) on
an artifact it fetches from the shared store and verifies against its sha256 pin. Replicas, autoscaling
and ``ray_actor_options`` (CPUs/GPUs) come from the ``ray_*`` settings, per model overridable.

Ray's own HTTP proxy is not started: nothing but the modelhost front talks to the replicas.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.config import Settings
from modelhost.dataplane.repository import ModelRepository
from modelhost.errors import InvalidInput, ModelhostError, ModelNotReady
from modelhost.registry import DeploymentInfo, VersionInfo
from modelhost.registry.store import ArtifactStore
from modelhost.runtimes import Runtime, runtime_by_name
from modelhost.runtimes.base import Signature

log = logging.getLogger(__name__)

_start_lock = threading.Lock()


@dataclass(frozen=True)
class RayModelOptions:
    """How one model's deployments are sized: fixed replicas or autoscaling, and per-replica resources."""

    num_replicas: int = 1
    min_replicas: int = 1
    max_replicas: int = 0  # 0: autoscaling off
    target_ongoing_requests: float = 2.0
    num_cpus: float = 1.0
    num_gpus: float = 0.0

    @classmethod
    def for_model(cls, settings: Settings, model: str) -> RayModelOptions:
        """The settings' defaults with ``ray_model_options[model]`` applied and checked."""
        values: dict[str, Any] = {
            "num_replicas": settings.ray_num_replicas,
            "min_replicas": settings.ray_min_replicas,
            "max_replicas": settings.ray_max_replicas,
            "target_ongoing_requests": settings.ray_target_ongoing_requests,
            "num_cpus": settings.ray_num_cpus,
            "num_gpus": settings.ray_num_gpus,
        }
        override = settings.ray_model_options.get(model, {})
        unknown = sorted(set(override) - set(values))
        if unknown:
            raise InvalidInput(
                f"unknown Ray option(s) {', '.join(unknown)} for model '{model}'; "
                f"known: {', '.join(sorted(values))}"
            )
        values.update(override)
        try:
            opts = cls(
                num_replicas=int(values["num_replicas"]),
                min_replicas=int(values["min_replicas"]),
                max_replicas=int(values["max_replicas"]),
                target_ongoing_requests=float(values["target_ongoing_requests"]),
                num_cpus=float(values["num_cpus"]),
                num_gpus=float(values["num_gpus"]),
            )
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"bad Ray option for model '{model}': {exc}") from None
        if opts.num_replicas < 1 or opts.min_replicas < 0 or opts.num_cpus < 0 or opts.num_gpus < 0:
            raise InvalidInput(f"Ray options of model '{model}' must be positive: {opts}")
        if opts.max_replicas and opts.max_replicas < max(1, opts.min_replicas):
            raise InvalidInput(
                f"max_replicas ({opts.max_replicas}) of model '{model}' is below min_replicas ({opts.min_replicas})"
            )
        return opts

    @property
    def autoscaling(self) -> bool:
        return self.max_replicas > 0

    @property
    def size(self) -> int:
        """The most replicas the deployment can have: how many batches the front sends at once."""
        return self.max_replicas if self.autoscaling else self.num_replicas

    def deployment_options(self, name: str) -> dict[str, Any]:
        """Keyword arguments for ``serve.deployment(...).options()``."""
        actor: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            actor["num_gpus"] = self.num_gpus
        out: dict[str, Any] = {"name": name, "ray_actor_options": actor}
        if self.autoscaling:
            out["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        else:
            out["num_replicas"] = self.num_replicas
        return out


def app_name(model: str, version: int) -> str:
    """The Ray Serve application (and deployment) name of one model version."""
    return "modelhost-" + re.sub(r"[^A-Za-z0-9_-]", "_", model) + f"-v{version}"


class ModelReplica:
    """The body of a Ray Serve deployment: one loaded runtime, the same class the local backend uses."""

    def __init__(self, runtime: str, artifact_uri: str, sha256: str, signature: dict[str, Any],
                 settings_json: str) -> None:  # fmt: skip
        settings = Settings.model_validate_json(settings_json)
        store = ArtifactStore(settings.resolved_artifact_url, settings.resolved_cache_dir)
        path: Path = store.fetch(artifact_uri, sha256)  # verifies the pin on every node
        self.runtime = runtime_by_name(runtime)(path, Signature.from_dict(signature), settings)
        self.runtime.load()

    def predict(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        return self.runtime.predict(inputs, list(outputs))


def ensure_ray(settings: Settings) -> None:
    """Connect to (or start) Ray and Ray Serve once per process, without Ray's HTTP proxy."""
    import ray
    from ray import serve

    with _start_lock:
        if not ray.is_initialized():
            ray.init(address=settings.ray_address, ignore_reinit_error=True, log_to_driver=False)
        serve.start(proxy_location="Disabled")


class RayRuntime(Runtime):
    """A runtime whose model lives in a Ray Serve deployment; ``predict`` forwards a batch to it."""

    name = "ray"

    def __init__(self, info: VersionInfo, settings: Settings) -> None:
        super().__init__(Path(info.artifact_uri), info.signature, settings)
        self.info = info
        self.options = RayModelOptions.for_model(settings, info.model)
        self.app = app_name(info.model, info.version)
        self.size = self.options.size
        self._handle: Any = None

    def load(self) -> None:
        from ray import serve

        ensure_ray(self.settings)
        # serve.deployment is typed as a decorator factory; called on a class it returns a Deployment.
        deployment = serve.deployment(ModelReplica).options(  # type: ignore[attr-defined]
            **self.options.deployment_options(self.app)
        )
        bound = deployment.bind(
            self.info.runtime,
            self.info.artifact_uri,
            self.info.sha256,
            self.info.signature.to_dict(),
            # Replicas read no database and serve no admin API: those secrets stay out of Ray's state.
            # replicas fetch and decrypt artifacts themselves (encryption keys travel), but never see the
            # registry database, Redis or the API-key HMAC secret
            self.settings.model_dump_json(exclude={"database_url", "redis_url", "key_secret"}),
        )
        try:
            self._handle = serve.run(bound, name=self.app, route_prefix=None)
        except Exception as exc:  # a replica failed its constructor (bad artifact, missing resources)
            raise ModelNotReady(
                f"model '{self.info.model}' version {self.info.version} failed to deploy on Ray: {exc}"
            ) from exc
        log.info("deployed %s on Ray Serve (%s)", self.app, self.options)

    def predict(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        if self._handle is None:
            raise ModelNotReady(f"model '{self.info.model}' version {self.info.version} is not deployed")
        from ray.exceptions import RayTaskError

        try:
            result: dict[str, np.ndarray] = self._handle.predict.remote(inputs, list(outputs)).result(
                timeout_s=self.settings.request_timeout_s
            )
        except RayTaskError as exc:
            # The replica's own error (e.g. InvalidInput from the runtime) keeps its type and status.
            cause = exc.cause
            if isinstance(cause, ModelhostError):
                raise cause from None
            raise
        return result

    def unload(self) -> None:
        from ray import serve

        if self._handle is not None:
            self._handle = None
            serve.delete(self.app)
            log.info("deleted %s from Ray Serve", self.app)


class RayModelRepository(ModelRepository):
    """The local repository's load/swap/drain/batching logic, with every model run on Ray Serve."""

    def _load_blocking(self, info: VersionInfo, deployment: DeploymentInfo) -> Runtime:
        if runtime_by_name(info.runtime).remote:  # a proxy to a remote upstream stays in the front
            return super()._load_blocking(info, deployment)
        self.registry.artifact_path(info)  # refuse a tampered artifact here too, before deploying
        runtime = RayRuntime(info, self.settings)
        runtime.load()
        self._warm_up(info, runtime)
        return runtime
