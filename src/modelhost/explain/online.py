"""Per-request SHAP explanations for a served model (no HTTP here; the route is serving/rest/explain.py).

The baseline distribution is the version's ``lineage.reference_profile.background`` (rows sampled at
training time), so only versions trained by a modelhost pipeline (or registered with such a
profile) can be explained.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import numpy as np

from modelhost.dataplane.plane import DataPlane, validate_inputs
from modelhost.dataplane.types import InferenceRequest, InferenceResponse, Tensor
from modelhost.errors import InvalidInput, ModelNotReady
from modelhost.explain.importance import explained_function, shap_values
from modelhost.runtimes.base import Runtime

MAX_ROWS = 64  # SHAP costs ~(2·features+1)·background model calls per row


def _explain(
    runtime: Runtime, input_name: str, background: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    names = [o.name for o in runtime.signature.outputs]
    label = next(n for n in ("predict", "label", *names) if n in names)
    proba = next((n for n in ("predict_proba", "probabilities") if n in names), None)
    dtype = x.dtype

    def run(out: str) -> Callable[[np.ndarray], np.ndarray]:
        return lambda z: runtime.predict({input_name: np.asarray(z, dtype=dtype)}, [out])[out]

    fn = explained_function(run(label), run(proba) if proba else None)
    values = shap_values(fn, background, x)
    base = np.asarray(fn(background), dtype=float).mean(axis=0)
    return values.astype(np.float64), np.atleast_1d(base).astype(np.float64)


async def explain(
    plane: DataPlane, ref: str, version: str | None, request: InferenceRequest
) -> InferenceResponse:
    """SHAP values for each row of the request: ``shap_values`` [rows, features(, classes)] and
    ``base_values`` (the mean model output over the background rows)."""
    info = await plane.resolve(ref, version)
    inputs = validate_inputs(info.signature, request)
    if len(inputs) != 1:
        raise InvalidInput("explanations are given for single-input tabular models")
    name, x = next(iter(inputs.items()))
    if x.ndim != 2:
        raise InvalidInput(f"input '{name}' must be 2-D [rows, features] to be explained")
    if x.shape[0] > MAX_ROWS:
        raise InvalidInput(f"at most {MAX_ROWS} rows can be explained per request, got {x.shape[0]}")
    background = (info.lineage.get("reference_profile") or {}).get("background") or []
    if not background:
        raise InvalidInput(
            f"model '{info.model}' version {info.version} has no reference sample in its lineage "
            "(train it with `modelhost train` to get one), so it cannot be explained"
        )
    bg = np.asarray(background, dtype=x.dtype)
    if bg.shape[1] != x.shape[1]:
        raise InvalidInput(
            f"input '{name}' has {x.shape[1]} features; the model was trained on {bg.shape[1]}"
        )
    entry = await plane.repository.ensure(info)
    if entry.runtime is None:
        raise ModelNotReady(f"model '{info.model}' version {info.version} was unloaded")
    values, base = await anyio.to_thread.run_sync(_explain, entry.runtime, name, bg, x)
    outputs = [
        Tensor("shap_values", "FP64", tuple(values.shape), values),
        Tensor("base_values", "FP64", tuple(base.shape), base),
    ]
    return InferenceResponse(model_name=ref, model_version=str(info.version), outputs=outputs, id=request.id)
