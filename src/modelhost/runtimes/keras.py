"""Keras 3 models (``.keras`` files) on the torch backend, always loaded with ``safe_mode=True``.

safe_mode refuses Lambda layers and any other deserialised Python code, so a ``.keras`` file can
only rebuild built-in layers from its JSON config and read weights from HDF5.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.config import Settings
from modelhost.errors import InvalidInput, UnsafeArtifact, UnsupportedFormat
from modelhost.registry.formats import KERAS
from modelhost.runtimes.base import Runtime, Signature, TensorSpec

INPUT_NAME = "input"


def import_keras() -> Any:
    """Import Keras on the torch backend (the only backend this platform installs)."""
    # Keras picks its backend once, at first import, from this variable; torch is what we ship.
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    if keras.backend.backend() != "torch":
        raise UnsupportedFormat(
            f"Keras runs on the '{keras.backend.backend()}' backend; modelhost needs KERAS_BACKEND=torch"
        )
    return keras


def load_keras(path: Path) -> Any:
    keras = import_keras()
    try:
        return keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):
            raise UnsafeArtifact(
                f"{path.name} needs unsafe deserialisation (Lambda/custom code): {exc}"
            ) from exc
        raise UnsupportedFormat(f"Keras cannot load {path.name}: {exc}") from exc
    except (TypeError, OSError) as exc:
        raise UnsupportedFormat(f"Keras cannot load {path.name}: {exc}") from exc


def _head(model: Any) -> tuple[str, int]:
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", "linear")
    units = int(model.output_shape[-1])
    return activation, units


def keras_signature(model: Any) -> Signature:
    in_shape = model.input_shape
    if len(in_shape) != 2:
        raise UnsupportedFormat(
            f"only [batch, features] Keras inputs are served; this model takes {in_shape}"
        )
    n_in = int(in_shape[1])
    activation, units = _head(model)
    inputs = (TensorSpec(INPUT_NAME, "FP32", (-1, n_in)),)
    extra: dict[str, Any] = {"framework": "keras", "activation": activation}
    if activation == "softmax" or (activation == "sigmoid" and units == 1):
        n = 2 if activation == "sigmoid" else units
        extra["classes"] = list(range(n))
        outputs: tuple[TensorSpec, ...] = (
            TensorSpec("predict", "INT64", (-1,)),
            TensorSpec("predict_proba", "FP32", (-1, n)),
        )
    else:
        outputs = (TensorSpec("predict", "FP32", (-1,) if units == 1 else (-1, units)),)
    return Signature(inputs=inputs, outputs=outputs, extra=extra)


class KerasRuntime(Runtime):
    name = "keras"
    formats = (KERAS,)

    @classmethod
    def inspect(cls, path: Path, settings: Settings) -> Signature:
        return keras_signature(load_keras(path))

    def load(self) -> None:
        self.model = load_keras(self.path)
        self.activation, self.units = _head(self.model)

    def predict(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        x = inputs[INPUT_NAME]
        n_in = self.signature.inputs[0].shape[1]
        if x.ndim != 2 or x.shape[1] != n_in:
            raise InvalidInput(f"input '{INPUT_NAME}' must have shape [batch, {n_in}], got {list(x.shape)}")
        y = np.asarray(self.model.predict_on_batch(np.asarray(x, dtype=np.float32)), dtype=np.float32)
        result: dict[str, np.ndarray] = {}
        if "classes" in self.signature.extra:
            proba = np.concatenate([1 - y, y], axis=1) if self.activation == "sigmoid" else y
            if "predict" in outputs:
                result["predict"] = proba.argmax(axis=1).astype(np.int64)
            if "predict_proba" in outputs:
                result["predict_proba"] = proba
        elif "predict" in outputs:
            result["predict"] = y.reshape(-1) if y.shape[1] == 1 else y
        return result

    def unload(self) -> None:
        self.model = None
