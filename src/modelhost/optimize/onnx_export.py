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


def torch_to_onnx(module: Any, spec: Any, out_path: Path) -> Path:
    """Export a registered-architecture torch MLP with its head (softmax/sigmoid + argmax) so the
    ONNX model answers ``predict`` and ``predict_proba`` like the torch runtime."""
    import warnings

    import torch
    from torch import nn

    class _Head(nn.Module):
        def __init__(self, body: nn.Module) -> None:
            super().__init__()
            self.body = body

        def forward(self, x: torch.Tensor) -> Any:
            raw = self.body(x)
            if spec.output == "linear":
                return raw.reshape(-1) if spec.out_features == 1 else raw
            if spec.output == "sigmoid":
                p = torch.sigmoid(raw)
                proba = torch.cat([1 - p, p], dim=1)
            else:
                proba = torch.softmax(raw, dim=1)
            return torch.argmax(proba, dim=1), proba

    names = ["predict"] if spec.output == "linear" else ["predict", "predict_proba"]
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated but exact and fast for these small static graphs.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Head(module).eval(),
            (torch.zeros(2, spec.in_features),),
            str(out_path),
            input_names=["input"],
            output_names=names,
            dynamic_axes={"input": {0: "batch"}, **{n: {0: "batch"} for n in names}},
            dynamo=False,
        )
    return out_path
