"""The runtime interface: one module per framework, each a subclass of ``Runtime``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelhost.config import Settings

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


class Runtime:
    """Loads one artifact and predicts on batches of numpy tensors.

    Subclasses set ``name`` and ``formats`` and implement ``inspect`` (signature at registration),
    ``load``, ``predict`` and optionally ``unload``. ``predict`` is called from a worker thread.
    """

    name: ClassVar[str] = ""
    formats: ClassVar[tuple[str, ...]] = ()
    # How many predict calls may run at once (worker processes, Ray replicas): the batcher's parallelism.
    size: int = 1
    # True for native engines that must always be called from the same thread (Bergamot is not
    # thread-safe; CTranslate2, PyAV): in the server process such a model gets one dedicated thread
    # that loads it, runs every predict (and every task-route call) and unloads it.
    single_thread: ClassVar[bool] = False

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

    def unload(self) -> None:
        """Release the model; the default drops references and lets Python free them."""

    def metadata(self) -> Signature:
        return self.signature
