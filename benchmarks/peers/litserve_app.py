"""LitServe serving the iris ONNX model the way its docs show: a LitAPI with setup/decode/predict/encode.

Run: IRIS_ONNX=/path/iris.onnx python litserve_app.py PORT
"""

from __future__ import annotations

import os
import sys

import litserve as ls
import numpy as np
import onnxruntime as ort


class IrisAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            os.environ["IRIS_ONNX"], sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def decode_request(self, request: dict) -> np.ndarray:
        return np.asarray(request["inputs"], dtype=np.float32)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        label, proba = self.session.run(None, {self.input_name: x})
        return label, proba

    def encode_response(self, output: tuple[np.ndarray, np.ndarray]) -> dict:
        label, proba = output
        return {"predict": label.tolist(), "predict_proba": proba.tolist()}


if __name__ == "__main__":
    server = ls.LitServer(IrisAPI(), accelerator="cpu", workers_per_device=1)
    # no access log, like every server in the benchmark (uvicorn option, passed through)
    server.run(port=int(sys.argv[1]), generate_client_file=False, access_log=False)
