"""Protobuf <-> DataPlane conversion, without a server."""

from __future__ import annotations

import numpy as np
import pytest

from modelhost.dataplane.types import InferenceResponse, Tensor
from modelhost.errors import InvalidInput
from modelhost.serving.grpc import convert
from modelhost.serving.grpc.protos import oip_v2_pb2 as pb


def _request(datatype: str, shape: list[int], field: str, values: list) -> pb.ModelInferRequest:  # type: ignore[type-arg]
    req = pb.ModelInferRequest(model_name="m")
    inp = req.inputs.add(name="x", datatype=datatype, shape=shape)
    getattr(inp.contents, field).extend(values)
    return req


@pytest.mark.parametrize(
    ("datatype", "field", "values", "dtype"),
    [
        ("BOOL", "bool_contents", [True, False], np.bool_),
        ("INT8", "int_contents", [-128, 127], np.int8),
        ("INT32", "int_contents", [-5, 5], np.int32),
        ("INT64", "int64_contents", [2**40, -1], np.int64),
        ("UINT8", "uint_contents", [0, 255], np.uint8),
        ("UINT64", "uint64_contents", [2**63, 1], np.uint64),
        ("FP32", "fp32_contents", [0.5, -1.25], np.float32),
        ("FP64", "fp64_contents", [0.1, 2.5], np.float64),
        ("BYTES", "bytes_contents", [b"a", b"\xff"], object),
    ],
)
def test_typed_contents_decode_per_datatype(datatype: str, field: str, values: list, dtype: type) -> None:  # type: ignore[type-arg]
    request, want_raw = convert.decode_infer_request(_request(datatype, [2], field, values))
    array = request.inputs[0].data
    assert array.dtype == np.dtype(dtype) and array.tolist() == values and not want_raw


def test_narrow_integers_out_of_range_are_refused() -> None:
    with pytest.raises(InvalidInput, match=r"values \[0, 300\] are out of range for UINT8"):
        convert.decode_infer_request(_request("UINT8", [2], "uint_contents", [0, 300]))


def test_fp16_must_be_raw() -> None:
    with pytest.raises(InvalidInput, match="FP16 has no typed contents"):
        convert.decode_infer_request(_request("FP16", [1], "fp32_contents", [1.0]))
    req = pb.ModelInferRequest(model_name="m")
    req.inputs.add(name="x", datatype="FP16", shape=[2])
    req.raw_input_contents.append(np.array([1.5, -2], "<f2").tobytes())
    request, want_raw = convert.decode_infer_request(req)
    assert request.inputs[0].data.tolist() == [1.5, -2.0] and want_raw


def test_raw_bytes_elements_are_length_prefixed() -> None:
    req = pb.ModelInferRequest(model_name="m")
    req.inputs.add(name="x", datatype="BYTES", shape=[2])
    req.raw_input_contents.append(b"\x02\0\0\0hi\x00\0\0\0")
    request, _ = convert.decode_infer_request(req)
    assert request.inputs[0].data.tolist() == [b"hi", b""]


def test_parameters_round_trip() -> None:
    req = pb.ModelInferRequest(model_name="m", id="r1")
    convert.set_parameters(req.parameters, {"b": True, "i": -3, "u": 2**64 - 1, "f": 0.5, "s": "x"})
    request, _ = convert.decode_infer_request(req)
    assert request.parameters == {"b": True, "i": -3, "u": 2**64 - 1, "f": 0.5, "s": "x"}
    assert request.id == "r1"


def test_response_typed_raw_and_fp16() -> None:
    outputs = [
        Tensor("label", "BYTES", (2,), np.array(["a", "b"], dtype=object)),
        Tensor("score", "FP32", (2,), np.array([0.25, 0.75], np.float32)),
    ]
    typed = convert.encode_infer_response(InferenceResponse("m", "3", outputs, id="r"), want_raw=False)
    assert (typed.model_name, typed.model_version, typed.id) == ("m", "3", "r")
    assert list(typed.outputs[0].contents.bytes_contents) == [b"a", b"b"]
    assert list(typed.outputs[1].contents.fp32_contents) == [0.25, 0.75]
    raw = convert.encode_infer_response(InferenceResponse("m", "3", outputs), want_raw=True)
    assert raw.raw_output_contents[1] == np.array([0.25, 0.75], "<f4").tobytes()
    half = [Tensor("h", "FP16", (1,), np.array([1.0], np.float16)), outputs[1]]
    forced = convert.encode_infer_response(InferenceResponse("m", "3", half), want_raw=False)
    assert len(forced.raw_output_contents) == 2 and not forced.outputs[1].HasField("contents")
