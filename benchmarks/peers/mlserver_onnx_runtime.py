"""An MLServer custom runtime for ONNX models (MLServer ships none): the documented MLModel pattern."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxModel(MLModel):
    async def load(self) -> bool:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        uri = await get_model_uri(self._settings)
        self.session = ort.InferenceSession(uri, sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        results = self.session.run(None, {self.input_name: x})
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output(n, r) for n, r in zip(self.output_names, results, strict=True)],
        )
