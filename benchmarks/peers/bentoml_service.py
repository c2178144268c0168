"""BentoML serving the iris ONNX model as a 1.2+-style service class (one worker, like the others).

Run: IRIS_ONNX=/path/iris.onnx bentoml serve bentoml_service:Iris --port P  (from benchmarks/peers)
"""

from __future__ import annotations

import os

import bentoml
import numpy as np


# one worker and no access log, like every server in the benchmark
@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class Iris:
    def __init__(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            os.environ["IRIS_ONNX"], sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    @bentoml.api
    def predict(self, inputs: list[list[float]]) -> dict:
        label, proba = self.session.run(None, {self.input_name: np.asarray(inputs, dtype=np.float32)})
        return {"predict": label.tolist(), "predict_proba": proba.tolist()}
