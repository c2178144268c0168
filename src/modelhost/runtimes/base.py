"""The runtime interface: one module per framework, each a subclass of ``Runtime``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelhost.config import Settings
from modelhost.errors import InvalidInput

# Open Inference Protocol v2 tensor datatypes and their numpy equivalents.
DATATYPE_TO_NUMPY: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_NUMPY_TO_DATATYPE = {v: k for k, v in DATATYPE_TO_NUMPY.items() if k != "BYTES"}


def datatype_of(array: np.ndarray) -> str:
    """The OIP datatype of a numpy array (strings and objects are BYTES)."""
    if array.dtype.kind in ("U", "S", "O"):
        return "BYTES"
    datatype = _NUMPY_TO_DATATYPE.get(array.dtype.newbyteorder("="))
    if datatype is None:
        raise TypeError(f"numpy dtype {array.dtype} has no Open Inference Protocol datatype")
    return datatype


@dataclass(frozen=True)
class TensorSpec:
    """Name, OIP datatype and shape of one input or output; -1 marks a variable dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorSpec:
        return cls(name=str(d["name"]), datatype=str(d["datatype"]), shape=tuple(int(x) for x in d["shape"]))


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            **({"extra": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Signature:
        return cls(
            inputs=tuple(TensorSpec.from_dict(t) for t in d.get("inputs", [])),
            outputs=tuple(TensorSpec.from_dict(t) for t in d.get("outputs", [])),
            extra=dict(d.get("extra", {})),
        )

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((t for t in self.outputs if t.name == name), None)


# Request parameters reach a runtime only when its signature declares them (``extra["parameters"]``,
# name -> {"type", "minimum", "maximum", "description"}): the data plane validates them and adds this
# hidden input, the parameters as one JSON string per row, so requests still share batches (the
# batcher groups rows by it, so one predict call sees one set of parameters).
PARAMETERS_INPUT = "__parameters__"
# Request parameters the protocols themselves use; never a model's business.
PROTOCOL_PARAMETERS = frozenset({"routing_key", "binary_data_output", "content_type", "headers", "timeout"})
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
}


def parameters_column(declared: Mapping[str, Any], given: Mapping[str, Any], rows: int) -> np.ndarray:
    """Validate request parameters against a signature's declared ones (unknown names, types and
    bounds are client mistakes) and return them as the hidden PARAMETERS_INPUT column."""
    unknown = sorted(set(given) - set(declared) - PROTOCOL_PARAMETERS)
    if unknown:
        takes = ", ".join(sorted(declared)) or "none"
        raise InvalidInput(f"unknown parameter(s) {', '.join(map(repr, unknown))}; this model takes: {takes}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name not in given:
            continue
        value, kind = given[name], str(spec.get("type", "string"))
        if not isinstance(value, _JSON_TYPES[kind]) or (kind != "boolean" and isinstance(value, bool)):
            raise InvalidInput(f"parameter '{name}' must be of type {kind}, not {type(value).__name__}")
        low, high = spec.get("minimum"), spec.get("maximum")
        if kind in ("integer", "number") and (
            (low is not None and value < low) or (high is not None and value > high)
        ):
            raise InvalidInput(f"parameter '{name}' must be between {low} and {high}, not {value}")
        if isinstance(value, str) and not 0 < len(value) <= 64:
            raise InvalidInput(f"parameter '{name}' must be a non-empty string of at most 64 characters")
        values[name] = value
    column = np.empty(rows, dtype=object)
    column[:] = json.dumps(values, sort_keys=True)
    return column


class Runtime:
    """Loads one artifact and predicts on batches of numpy tensors.

    Subclasses set ``name`` and ``formats`` and implement ``inspect`` (signature at registration),
    ``load``, ``predict`` and optionally ``unload``. ``predict`` is called from a worker thread.
    """

    name: ClassVar[str] = ""
    formats: ClassVar[tuple[str, ...]] = ()
    # How many predict calls may run at once (worker processes, Ray replicas): the batcher's parallelism.
    size: int = 1
    # A proxy to a remote server (runtimes/upstream.py): never run in worker processes.
    remote: ClassVar[bool] = False
    # True for native engines that must always be called from the same thread (Bergamot: concurrent
    # calls crash, and so did calls from several threads one at a time; CTranslate2, PyAV): in the
    # server process such a model gets one dedicated thread (``dataplane.modelthread.ModelThread``)
    # that loads it, runs every predict (and every task-route call) and unloads it.
    single_thread: ClassVar[bool] = False
    # Rows per batch when the deployment does not set max_batch_size: a cap for engines whose batch
    # cost grows with its longest row (speech), so one large batch cannot outlast the request timeout.
    default_max_batch_size: ClassVar[int | None] = None
    # True when ``prepare`` does per-request work (decoding, preprocessing) that should run before the
    # request joins a batch: each request's on its own worker thread, so concurrent requests decode in
    # parallel and a batch holds only the engine call (images: decode + resize, then one forward pass).
    prepares: ClassVar[bool] = False

    def __init__(self, path: Path, signature: Signature, settings: Settings) -> None:
        self.path = path
        self.signature = signature
        self.settings = settings

    @classmethod
    def inspect(cls, path: Path, settings: Settings) -> Signature:
        raise NotImplementedError

    def load(self) -> None:
        raise NotImplementedError

    def predict(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def prepare(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One request's inputs turned into what ``predict`` batches (called only when ``prepares``, in
        the server process, on a worker thread); ``predict`` must accept both forms."""
        return inputs

    def unload(self) -> None:
        """Release the model; the default drops references and lets Python free them."""

    def metadata(self) -> Signature:
        return self.signature
