"""Bare FastAPI + onnxruntime: the smallest idiomatic server for the iris ONNX model (the baseline).

Run: IRIS_ONNX=/path/iris.onnx uvicorn fastapi_app:app --port P  (from benchmarks/peers)
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel


def _session() -> ort.InferenceSession:
    opts = ort.SessionOptions()
    # one intra-op thread, like every server in the benchmark: the model is tiny and cores are few
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(
        os.environ["IRIS_ONNX"], sess_options=opts, providers=["CPUExecutionProvider"]
    )


class Features(BaseModel):
    inputs: list[list[float]]


session = _session()
input_name = session.get_inputs()[0].name
app = FastAPI()


# async: the model call takes microseconds, so a thread-pool hop would cost more than it saves
@app.post("/predict")
async def predict(body: Features) -> dict[str, list]:
    label, proba = session.run(None, {input_name: np.asarray(body.inputs, dtype=np.float32)})
    return {"predict": label.tolist(), "predict_proba": proba.tolist()}
