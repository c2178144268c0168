"""scikit-learn models stored with skops, loaded only with the platform's trusted-type list."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.config import Settings
from modelhost.errors import InvalidInput, UnsupportedFormat
from modelhost.registry.formats import SKOPS, skops_trusted_types
from modelhost.runtimes.base import Runtime, Signature, TensorSpec, datatype_of

INPUT_NAME = "input"


def load_skops(path: Path, settings: Settings) -> Any:
    import skops.io as sio

    trusted = skops_trusted_types(path, settings.skops_extra_trusted_types)
    return sio.load(str(path), trusted=trusted)


def sklearn_signature(model: Any) -> Signature:
    if not hasattr(model, "predict"):
        raise UnsupportedFormat(f"the skops artifact holds a {type(model).__name__}, which has no predict()")
    n_features = int(getattr(model, "n_features_in_", -1))
    inputs = (TensorSpec(INPUT_NAME, "FP64", (-1, n_features)),)
    classes = getattr(model, "classes_", None)
    if classes is not None:
        label_type = datatype_of(np.asarray(classes))
        outputs = [TensorSpec("predict", label_type, (-1,))]
        if hasattr(model, "predict_proba"):
            outputs.append(TensorSpec("predict_proba", "FP64", (-1, len(classes))))
        extra = {
            "classes": np.asarray(classes).tolist(),
            "framework": "sklearn",
            "estimator": type(model).__name__,
        }
    else:
        n_out = getattr(model, "n_outputs_", 1)
        outputs = [TensorSpec("predict", "FP64", (-1,) if n_out == 1 else (-1, int(n_out)))]
        extra = {"framework": "sklearn", "estimator": type(model).__name__}
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        extra["feature_names"] = [str(n) for n in names]
    return Signature(inputs=inputs, outputs=tuple(outputs), extra=extra)


class SklearnRuntime(Runtime):
    name = "sklearn"
    formats = (SKOPS,)

    @classmethod
    def inspect(cls, path: Path, settings: Settings) -> Signature:
        return sklearn_signature(load_skops(path, settings))

    def load(self) -> None:
        self.model = load_skops(self.path, self.settings)

    def predict(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        x = inputs[INPUT_NAME]
        if x.ndim != 2:
            raise InvalidInput(
                f"input '{INPUT_NAME}' must be 2-D [batch, features], got shape {list(x.shape)}"
            )
        result: dict[str, np.ndarray] = {}
        for name in outputs:
            if name == "predict":
                y = np.asarray(self.model.predict(x))
                result[name] = y.astype(object) if y.dtype.kind == "U" else y
            elif name == "predict_proba":
                result[name] = np.asarray(self.model.predict_proba(x), dtype=np.float64)
        return result

    def unload(self) -> None:
        self.model = None
