"""Model graphs (like Triton ensembles): a JSON file that chains registered models, each step pinned
to one version. The runtime only holds the validated spec; ``dataplane/graph.py`` executes it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelhost.config import Settings
from modelhost.errors import UnsupportedFormat
from modelhost.registry.formats import GRAPH
from modelhost.runtimes.base import Runtime, Signature, TensorSpec


@dataclass(frozen=True)
class Step:
    name: str
    model: str
    version: int
    # step input name -> source: "$<graph input>" or "<earlier step>.<output>"
    inputs: dict[str, str]


@dataclass(frozen=True)
class GraphSpec:
    inputs: tuple[TensorSpec, ...]
    steps: tuple[Step, ...]
    # graph output name -> "<step>.<output>"
    outputs: dict[str, str]


def _bad(path: Path, why: str) -> UnsupportedFormat:
    return UnsupportedFormat(f"{path.name}: invalid model graph: {why}")


def parse_graph(path: Path) -> GraphSpec:
    """Read and check a graph file: names unique, every source defined before use, versions pinned."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _bad(path, f"not JSON ({exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("steps"), list) or not raw["steps"]:
        raise _bad(path, "expected an object with a non-empty 'steps' list")
    try:
        inputs = tuple(TensorSpec.from_dict(t) for t in raw.get("inputs", []))
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(path, f"'inputs' must be a list of {{name, datatype, shape}} ({exc})") from None
    if not inputs:
        raise _bad(path, "'inputs' is empty")
    available = {f"${t.name}" for t in inputs}
    earlier: set[str] = set()
    steps: list[Step] = []
    for i, s in enumerate(raw["steps"]):
        if not isinstance(s, dict):
            raise _bad(path, f"step {i} is not an object")
        name, model, version = s.get("name"), s.get("model"), s.get("version")
        if not isinstance(name, str) or not name or any(st.name == name for st in steps):
            raise _bad(path, f"step {i} needs a unique 'name'")
        if not isinstance(model, str) or not model or "@" in model:
            raise _bad(path, f"step '{name}' needs 'model' (a model name, no alias)")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise _bad(path, f"step '{name}' must pin an integer 'version' (graphs never follow aliases)")
        wiring = s.get("inputs")
        if not isinstance(wiring, dict) or not wiring:
            raise _bad(path, f"step '{name}' needs 'inputs': {{input name: source}}")
        for key, src in wiring.items():
            if not isinstance(src, str) or not (src in available or src.split(".", 1)[0] in earlier):
                raise _bad(path, f"step '{name}' input '{key}' reads {src!r}, which is not defined before it")
        steps.append(Step(name, model, version, {str(k): str(v) for k, v in wiring.items()}))
        earlier.add(name)
    outputs = raw.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        raise _bad(path, "'outputs' must map graph output names to '<step>.<output>'")
    step_names = {st.name for st in steps}
    for out, src in outputs.items():
        if not isinstance(src, str) or src.split(".", 1)[0] not in step_names or "." not in src:
            raise _bad(path, f"output '{out}' reads {src!r}; expected '<step>.<output>'")
    return GraphSpec(inputs, tuple(steps), {str(k): str(v) for k, v in outputs.items()})


class GraphRuntime(Runtime):
    name = "graph"
    formats = (GRAPH,)

    @classmethod
    def inspect(cls, path: Path, settings: Settings) -> Signature:
        spec = parse_graph(path)
        return Signature(
            inputs=spec.inputs,
            # Datatypes and shapes come from the steps, known only when they are resolved.
            outputs=tuple(TensorSpec(name, "BYTES", (-1,)) for name in spec.outputs),
            extra={
                "kind": "graph",
                "steps": [{"name": s.name, "model": s.model, "version": s.version} for s in spec.steps],
            },
        )

    def load(self) -> None:
        self.spec = parse_graph(self.path)

    def predict(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        raise UnsupportedFormat("a model graph runs in the data plane, not as a single runtime")
