"""Post-training dynamic int8 quantization of ONNX models (onnxruntime.quantization).

Weights of MatMul/Gemm nodes are stored as int8 with a scale; activations are quantized on the fly.
Tree ensembles and linear models converted by skl2onnx use ai.onnx.ml operators that have no int8
form, so their size does not change (the report shows it).
"""

from __future__ import annotations

import logging
from pathlib import Path

from modelhost.errors import InvalidInput, UnsupportedFormat

MODES = ("int8", "uint8")


def quantize_onnx(src: Path, dst: Path, mode: str = "int8") -> Path:
    """Write a dynamically quantized copy of the ONNX model ``src`` to ``dst``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if mode not in MODES:
        raise InvalidInput(f"--quantize: '{mode}' is not one of {', '.join(MODES)}")
    weight_type = QuantType.QInt8 if mode == "int8" else QuantType.QUInt8
    # onnxruntime logs a generic "consider pre-processing" hint on the root logger for every call.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        # Per-channel scales: one outlier column (e.g. a folded-in scaler on a near-constant feature)
        # would otherwise squash every other weight of the matrix into a few int8 levels.
        quantize_dynamic(str(src), str(dst), weight_type=weight_type, per_channel=True)
    except ValueError as exc:  # graphs of ai.onnx.ml operators only (trees, linear models)
        raise UnsupportedFormat(
            f"--quantize: onnxruntime cannot quantize this graph ({exc}); tree and linear models converted "
            "from scikit-learn use ai.onnx.ml operators that have no int8 form"
        ) from None
    finally:
        root.setLevel(level)
    return dst
