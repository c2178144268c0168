"""ONNX models on onnxruntime (CPU by default)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from modelhost.config import Settings
from modelhost.errors import UnsupportedFormat
from modelhost.registry.formats import ONNX
from modelhost.runtimes.base import Runtime, Signature, TensorSpec

_ORT_TO_DATATYPE = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def _session(path: Path, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for invalid graphs
        raise UnsupportedFormat(f"onnxruntime cannot load {path.name}: {exc}") from exc


def _spec(arg) -> TensorSpec | None:
    datatype = _ORT_TO_DATATYPE.get(arg.type)
    if datatype is None:  # sequences and maps (e.g. ZipMap) have no OIP tensor form
        return None
    shape = tuple(d if isinstance(d, int) else -1 for d in (arg.shape or []))
    return TensorSpec(arg.name, datatype, shape)


def onnx_signature(session) -> Signature:
    inputs = [_spec(a) for a in session.get_inputs()]
    if any(s is None for s in inputs):
        raise UnsupportedFormat(
            "the ONNX model has a non-tensor input, which the inference protocol cannot carry"
        )
    outputs = tuple(s for s in (_spec(a) for a in session.get_outputs()) if s is not None)
    if not outputs:
        raise UnsupportedFormat(
            "the ONNX model has no tensor outputs (convert classifiers with zipmap=False)"
        )
    return Signature(
        inputs=tuple(s for s in inputs if s is not None), outputs=outputs, extra={"framework": "onnx"}
    )


class OnnxRuntime(Runtime):
    name = "onnx"
    formats = (ONNX,)

    @classmethod
    def inspect(cls, path: Path, settings: Settings) -> Signature:
        return onnx_signature(_session(path))

    def load(self) -> None:
        self.session = _session(self.path)

    def predict(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        feed = {k: (v.astype(str) if v.dtype == object else v) for k, v in inputs.items()}
        values = self.session.run(list(outputs), feed)
        return {name: np.asarray(v) for name, v in zip(outputs, values, strict=True)}

    def unload(self) -> None:
        self.session = None
