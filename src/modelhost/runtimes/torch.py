"""PyTorch models: safetensors weights + a registered architecture spec (see torch_arch)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.config import Settings
from modelhost.errors import InvalidInput
from modelhost.registry.formats import SAFETENSORS
from modelhost.runtimes import torch_arch
from modelhost.runtimes.base import Runtime, Signature, TensorSpec, datatype_of

INPUT_NAME = "input"


def arch_signature(spec: torch_arch.ArchSpec, framework: str) -> Signature:
    """Outputs follow the scikit-learn runtime's names so clients and tools treat them alike."""
    inputs = (TensorSpec(INPUT_NAME, "FP32", (-1, spec.in_features)),)
    extra: dict[str, object] = {"framework": framework, "architecture": spec.name, "output": spec.output}
    if spec.is_classifier:
        classes = list(spec.classes) or list(range(max(spec.out_features, 2)))
        n = len(classes)
        outputs: tuple[TensorSpec, ...] = (
            TensorSpec("predict", datatype_of(np.asarray(classes)), (-1,)),
            TensorSpec("predict_proba", "FP32", (-1, n)),
        )
        extra["classes"] = classes
    else:
        shape = (-1,) if spec.out_features == 1 else (-1, spec.out_features)
        outputs = (TensorSpec("predict", "FP32", shape),)
    return Signature(inputs=inputs, outputs=outputs, extra=extra)


def probabilities(raw: np.ndarray, output: str) -> np.ndarray:
    """Turn a network's last-layer values into class probabilities."""
    if output == "sigmoid":
        p = 1.0 / (1.0 + np.exp(-raw.reshape(-1)))
        return np.stack([1.0 - p, p], axis=1).astype(np.float32)
    z = raw - raw.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def head_outputs(
    raw: np.ndarray, spec_output: str, classes: Sequence[object], outputs: Sequence[str]
) -> dict[str, np.ndarray]:
    """predict / predict_proba from raw network outputs (shared by the torch and keras runtimes)."""
    result: dict[str, np.ndarray] = {}
    if spec_output in ("softmax", "sigmoid"):
        proba = probabilities(raw, spec_output)
        labels = np.asarray(classes)[proba.argmax(axis=1)]
        if "predict" in outputs:
            result["predict"] = labels.astype(object) if labels.dtype.kind == "U" else labels
        if "predict_proba" in outputs:
            result["predict_proba"] = proba
    elif "predict" in outputs:
        result["predict"] = raw.reshape(-1) if raw.ndim == 2 and raw.shape[1] == 1 else raw
    return result


def pin_current_thread_to_one(torch: Any) -> None:
    """Make torch's intra-op parallelism one thread for the calling thread only.

    ``torch.set_num_threads`` sets the calling thread's OpenMP/MKL count *and* a process-wide default
    that threads adopt on their first parallel op. So: initialise this thread first, set 1 here, then
    put the process-wide default back from a short-lived thread (its own count is what changes).
    """
    torch.get_num_threads()  # runs this thread's one-time initialisation first
    default: list[int] = []
    # The process-wide count as a fresh thread adopts it (this thread's own may already be 1).
    _in_thread(lambda: default.append(torch.get_num_threads()))
    torch.set_num_threads(1)
    _in_thread(lambda: torch.set_num_threads(default[0]))


def _in_thread(fn: Callable[[], object]) -> None:
    thread = threading.Thread(target=fn, name="torch-threads")
    thread.start()
    thread.join()


class TorchRuntime(Runtime):
    name = "torch"
    formats = (SAFETENSORS,)
    # Loaded and called on one dedicated thread when served in process (see ``load``).
    single_thread = True

    @classmethod
    def inspect(cls, path: Path, settings: Settings) -> Signature:
        _module, spec = torch_arch.load(path)  # loads the weights too: a mismatch fails registration
        return arch_signature(spec, "torch")

    def load(self) -> None:
        import torch

        # One intra-op thread, like the ONNX runtime's sessions: small MLPs gain nothing from more, and
        # on a busy host a multi-threaded matmul was measured 150x slower (thread contention). Only for
        # the thread this runtime is loaded and called on (``single_thread``): the process-wide count
        # stays, so an LLM or embedding model served beside it keeps every core.
        pin_current_thread_to_one(torch)
        self.module, self.spec = torch_arch.load(self.path)
        self._torch = torch

    def predict(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        x = inputs[INPUT_NAME]
        if x.ndim != 2 or x.shape[1] != self.spec.in_features:
            raise InvalidInput(
                f"input '{INPUT_NAME}' must have shape [batch, {self.spec.in_features}], got {list(x.shape)}"
            )
        with self._torch.inference_mode():
            raw = self.module(self._torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
        classes = self.signature.extra.get("classes", [])
        return head_outputs(raw, self.spec.output, classes, outputs)

    def unload(self) -> None:
        self.module = None
