"""Convert scikit-learn models to ONNX with skl2onnx (tensor outputs only, no ZipMap)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelhost.errors import UnsupportedFormat


def sklearn_to_onnx(model: Any, out_path: Path, n_features: int | None = None) -> Path:
    """Write ``model`` as an ONNX file taking FP32 [batch, n_features]; classifiers give
    ``label`` and ``probabilities`` tensors."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    n = n_features if n_features is not None else getattr(model, "n_features_in_", None)
    if n is None:
        raise UnsupportedFormat("cannot convert to ONNX: the model does not record n_features_in_")
    options: dict[int, dict[str, Any]] = {}
    if hasattr(model, "classes_") and hasattr(model, "predict_proba"):
        options = {id(model): {"zipmap": False}}
    try:
        onx = to_onnx(
            model,
            initial_types=[("input", FloatTensorType([None, int(n)]))],
            options=options,
            target_opset=None,
        )
    except Exception as exc:  # skl2onnx raises many types for unsupported estimators
        raise UnsupportedFormat(f"skl2onnx cannot convert {type(model).__name__}: {exc}") from exc
    out_path.write_bytes(onx.SerializeToString())
    return out_path
