"""Model optimization: ONNX export (more later: quantization, pruning, distillation)."""
