"""Run a model graph: each step is an ordinary inference on a pinned model version; a step's outputs
feed later steps by name. The response carries every step's latency in its parameters."""

from __future__ import annotations

import contextvars
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from modelhost.dataplane.types import InferenceRequest, InferenceResponse, Tensor
from modelhost.errors import InvalidInput, ModelhostError
from modelhost.runtimes.base import datatype_of
from modelhost.runtimes.graph import GraphRuntime

if TYPE_CHECKING:
    from modelhost.dataplane.plane import DataPlane
    from modelhost.registry import VersionInfo

# Graphs may call graphs; versions are pinned but a later version can point back at an earlier
# graph, so nesting is bounded instead of recursing until the stack overflows.
MAX_DEPTH = 8
_depth: contextvars.ContextVar[int] = contextvars.ContextVar("graph_depth", default=0)


async def run_graph(
    plane: DataPlane,
    info: VersionInfo,
    graph: GraphRuntime,
    inputs: dict[str, np.ndarray],
    outputs: list[str],
) -> InferenceResponse:
    """Execute ``graph`` step by step; errors name the failing step."""
    depth = _depth.get()
    if depth >= MAX_DEPTH:
        raise InvalidInput(f"model graphs nest more than {MAX_DEPTH} deep (a graph that calls itself?)")
    token = _depth.set(depth + 1)
    try:
        return await _run(plane, info, graph, inputs, outputs)
    finally:
        _depth.reset(token)


async def _run(
    plane: DataPlane,
    info: VersionInfo,
    graph: GraphRuntime,
    inputs: dict[str, np.ndarray],
    outputs: list[str],
) -> InferenceResponse:
    values: dict[str, np.ndarray] = {f"${k}": v for k, v in inputs.items()}
    timings: list[dict[str, Any]] = []
    started = time.perf_counter()
    for step in graph.spec.steps:
        tensors = []
        for name, src in step.inputs.items():
            if src not in values:
                raise InvalidInput(f"graph step '{step.name}': '{src}' was not produced by an earlier step")
            array = values[src]
            tensors.append(
                Tensor(name=name, datatype=datatype_of(array), shape=tuple(array.shape), data=array)
            )
        t0 = time.perf_counter()
        try:
            result = await plane.infer(step.model, str(step.version), InferenceRequest(inputs=tensors))
        except ModelhostError as exc:
            # Same error class and status (a missing step version stays a 404), with the step named.
            exc.message = f"graph step '{step.name}' ({step.model} v{step.version}): {exc.message}"
            exc.args = (exc.message,)
            raise
        took = time.perf_counter() - t0
        # Labels are bounded: graph, step names and models come from a registered graph version.
        plane.metrics.graph_step_latency.labels(info.model, step.name, step.model, str(step.version)).observe(
            took
        )
        timings.append(
            {
                "step": step.name,
                "model": step.model,
                "version": step.version,
                "latency_ms": round(took * 1000, 2),
            }
        )
        for t in result.outputs:
            values[f"{step.name}.{t.name}"] = t.data
    out = []
    for name in outputs:
        src = graph.spec.outputs[name]
        if src not in values:
            raise InvalidInput(f"graph output '{name}' reads '{src}', which no step produced")
        array = values[src]
        out.append(Tensor(name=name, datatype=datatype_of(array), shape=tuple(array.shape), data=array))
    return InferenceResponse(
        model_name=info.model,
        model_version=str(info.version),
        outputs=out,
        parameters={"steps": timings, "latency_ms": round((time.perf_counter() - started) * 1000, 2)},
    )
