"""Protobuf <-> DataPlane types for the OIP v2 gRPC service; the gRPC twin of serving/rest/v2.py's
codec calls. Strict like the JSON codec: a value is never silently changed to fit a datatype."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from modelhost.dataplane import codec
from modelhost.dataplane.types import InferenceRequest, InferenceResponse, RequestedOutput, Tensor
from modelhost.errors import InvalidInput
from modelhost.runtimes.base import DATATYPE_TO_NUMPY, datatype_of
from modelhost.serving.grpc.protos import oip_v2_pb2 as pb

# The InferTensorContents field that carries each datatype, and the numpy type of that field.
CONTENTS_FIELD: dict[str, tuple[str, type[np.generic] | type[object]]] = {
    "BOOL": ("bool_contents", np.bool_),
    "INT8": ("int_contents", np.int32),
    "INT16": ("int_contents", np.int32),
    "INT32": ("int_contents", np.int32),
    "INT64": ("int64_contents", np.int64),
    "UINT8": ("uint_contents", np.uint32),
    "UINT16": ("uint_contents", np.uint32),
    "UINT32": ("uint_contents", np.uint32),
    "UINT64": ("uint64_contents", np.uint64),
    "FP32": ("fp32_contents", np.float32),
    "FP64": ("fp64_contents", np.float64),
    "BYTES": ("bytes_contents", object),
}
_ALL_FIELDS = sorted({f for f, _ in CONTENTS_FIELD.values()})
# Request parameter that asks for raw_output_contents even when the inputs came as typed contents.
RAW_OUTPUT_PARAMETER = "raw_output"


def parameters_to_dict(params: Any) -> dict[str, Any]:
    """A protobuf map<string, InferParameter | ModelRepositoryParameter> as plain Python values."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        choice = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, choice) if choice is not None else None
    return out


def set_parameters(target: Any, values: dict[str, Any]) -> None:
    """Fill a protobuf map<string, InferParameter> from Python values (others are sent as strings)."""
    for key, value in values.items():
        param = target[key]
        if isinstance(value, bool):
            param.bool_param = value
        elif isinstance(value, int):
            if value >= 2**63:
                param.uint64_param = value
            else:
                param.int64_param = value
        elif isinstance(value, float):
            param.double_param = value
        else:
            param.string_param = str(value)


def _dims(name: str, shape: Any) -> tuple[int, ...]:
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise InvalidInput(f"input '{name}': shape {list(dims)} has a negative dimension")
    return dims


def decode_contents(name: str, datatype: str, shape: Any, contents: pb.InferTensorContents) -> np.ndarray:
    """Decode typed ``contents`` (the repeated field that matches ``datatype``) into a numpy array."""
    dims = _dims(name, shape)
    if datatype == "FP16":
        raise InvalidInput(f"input '{name}': FP16 has no typed contents field; send it in raw_input_contents")
    if datatype not in CONTENTS_FIELD:
        raise InvalidInput(
            f"input '{name}': unknown datatype {datatype!r}; expected one of {', '.join(DATATYPE_TO_NUMPY)}"
        )
    field, wire_type = CONTENTS_FIELD[datatype]
    values = getattr(contents, field)
    count = math.prod(dims)
    if len(values) != count:
        elsewhere = [f for f in _ALL_FIELDS if f != field and len(getattr(contents, f))]
        hint = (
            f" (data was given in {', '.join(elsewhere)}, which does not hold {datatype})"
            if elsewhere
            else ""
        )
        raise InvalidInput(
            f"input '{name}': shape {list(dims)} needs {count} elements but {field} has {len(values)}{hint}"
        )
    dtype = DATATYPE_TO_NUMPY[datatype]
    if datatype == "BYTES":
        out = np.empty(count, dtype=object)
        out[:] = list(values)
        return out.reshape(dims)
    raw = np.array(values, dtype=wire_type)
    if count and raw.dtype != dtype:
        # int_contents / uint_contents carry 8- and 16-bit integers in 32 bits: refuse what does not fit.
        info = np.iinfo(dtype)
        lo, hi = int(raw.min()), int(raw.max())
        if lo < info.min or hi > info.max:
            raise InvalidInput(f"input '{name}': values [{lo}, {hi}] are out of range for {datatype}")
    return raw.astype(dtype, copy=False).reshape(dims)


def decode_infer_request(msg: pb.ModelInferRequest) -> tuple[InferenceRequest, bool]:
    """The DataPlane request of a ModelInferRequest, and whether to answer with raw contents."""
    raw = msg.raw_input_contents
    if raw and len(raw) != len(msg.inputs):
        raise InvalidInput(
            f"raw_input_contents has {len(raw)} entries but there are {len(msg.inputs)} inputs; "
            "send one entry per input, in the order of 'inputs'"
        )
    tensors: list[Tensor] = []
    for i, inp in enumerate(msg.inputs):
        if not inp.name:
            raise InvalidInput(f"input #{i} has no name")
        has_contents = inp.HasField("contents")
        if raw:
            if has_contents:
                raise InvalidInput(
                    f"input '{inp.name}' has contents, but the request also uses raw_input_contents; "
                    "use one or the other"
                )
            array = codec.decode_binary(inp.name, inp.datatype, list(inp.shape), raw[i])
        elif has_contents or math.prod(inp.shape) == 0:
            array = decode_contents(inp.name, inp.datatype, inp.shape, inp.contents)
        else:
            raise InvalidInput(f"input '{inp.name}' has no contents (and raw_input_contents is empty)")
        tensors.append(
            Tensor(inp.name, inp.datatype, tuple(inp.shape), array, parameters_to_dict(inp.parameters))
        )
    outputs = None
    if msg.outputs:
        outputs = [RequestedOutput(o.name, parameters_to_dict(o.parameters)) for o in msg.outputs]
    params = parameters_to_dict(msg.parameters)
    want_raw = bool(raw) or params.get(RAW_OUTPUT_PARAMETER) is True
    request = InferenceRequest(inputs=tensors, outputs=outputs, id=msg.id or None, parameters=params)
    return request, want_raw


def _fill_contents(contents: pb.InferTensorContents, datatype: str, array: np.ndarray) -> None:
    field, _ = CONTENTS_FIELD[datatype]
    flat = array.reshape(-1)
    if datatype == "BYTES":
        values: list[Any] = [x if isinstance(x, bytes) else str(x).encode("utf-8") for x in flat]
    else:
        values = flat.tolist()
    getattr(contents, field).extend(values)


def encode_infer_response(resp: InferenceResponse, want_raw: bool) -> pb.ModelInferResponse:
    """A ModelInferResponse: raw_output_contents if asked (or if an output is FP16), else typed contents."""
    msg = pb.ModelInferResponse(
        model_name=resp.model_name, model_version=resp.model_version, id=resp.id or ""
    )
    set_parameters(msg.parameters, resp.parameters)
    # The protocol forbids mixing the two forms, and FP16 exists only in raw form.
    raw = want_raw or any(t.data.dtype == np.float16 for t in resp.outputs)
    for t in resp.outputs:
        if raw:
            datatype, shape, buf = codec.encode_binary(t.data)
            out = msg.outputs.add(name=t.name, datatype=datatype, shape=shape)
            msg.raw_output_contents.append(buf)
        else:
            datatype = datatype_of(t.data)
            out = msg.outputs.add(name=t.name, datatype=datatype, shape=list(t.data.shape))
            _fill_contents(out.contents, datatype, t.data)
        set_parameters(out.parameters, t.parameters)
    return msg


def model_metadata_message(meta: dict[str, Any]) -> pb.ModelMetadataResponse:
    """A ModelMetadataResponse from the DataPlane's metadata dict (the REST answer's shape)."""
    msg = pb.ModelMetadataResponse(
        name=meta["name"], versions=list(meta["versions"]), platform=str(meta.get("platform", ""))
    )
    for spec in meta["inputs"]:
        msg.inputs.add(name=spec["name"], datatype=spec["datatype"], shape=spec["shape"])
    for spec in meta["outputs"]:
        msg.outputs.add(name=spec["name"], datatype=spec["datatype"], shape=spec["shape"])
    return msg
