"""The real server's OIP v2 gRPC service, called with the official Triton gRPC client and with the
official proto's own stubs (as tritonclient ships them)."""

from __future__ import annotations

import queue

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from .conftest import Server

pytestmark = pytest.mark.e2e
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])


@pytest.fixture
def client(server: Server):  # type: ignore[no-untyped-def]
    c = triton.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    yield c
    c.close()


def test_health_and_metadata(client) -> None:  # type: ignore[no-untyped-def]
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("iris@production")
    assert client.get_server_metadata().name == "modelhost"
    meta = client.get_model_metadata("iris@production")
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("input", "FP64", [-1, 4])]
    assert "1" in meta.versions


def test_infer_raw_contents(client) -> None:  # type: ignore[no-untyped-def]
    inp = triton.InferInput("input", list(ROWS.shape), "FP64")
    inp.set_data_from_numpy(ROWS)
    outputs = [triton.InferRequestedOutput("predict"), triton.InferRequestedOutput("predict_proba")]
    res = client.infer("iris@production", [inp], outputs=outputs, request_id="g-1")
    assert res.as_numpy("predict").tolist() == [0, 2]
    proba = res.as_numpy("predict_proba")
    assert proba.shape == (2, 3) and np.allclose(proba.sum(axis=1), 1)
    assert res.get_response().id == "g-1" and res.get_response().model_version == "1"
    by_version = client.infer("iris", [inp], model_version="1")
    assert by_version.as_numpy("predict").tolist() == [0, 2]


def test_infer_typed_contents_with_the_official_stub(server: Server) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        req = service_pb2.ModelInferRequest(model_name="iris@production")
        inp = req.inputs.add(name="input", datatype="FP64", shape=[2, 4])
        inp.contents.fp64_contents.extend(ROWS.ravel().tolist())
        resp = stub.ModelInfer(req)
    out = {o.name: o for o in resp.outputs}
    assert list(out["predict"].contents.int64_contents) == [0, 2]
    assert len(out["predict_proba"].contents.fp64_contents) == 6 and not resp.raw_output_contents


def test_bad_inputs_are_invalid_argument(client) -> None:  # type: ignore[no-untyped-def]
    wrong_type = triton.InferInput("input", [2, 4], "FP32")
    wrong_type.set_data_from_numpy(ROWS.astype(np.float32))
    wrong_shape = triton.InferInput("input", [2, 2], "FP64")
    wrong_shape.set_data_from_numpy(ROWS[:, :2].copy())
    for inputs, match in [([wrong_type], "expects FP64"), ([wrong_shape], "expects \\[-1, 4\\]")]:
        with pytest.raises(InferenceServerException, match=match) as info:
            client.infer("iris@production", inputs)
        assert info.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_unknown_model_and_version_are_not_found(client) -> None:  # type: ignore[no-untyped-def]
    inp = triton.InferInput("input", [2, 4], "FP64")
    inp.set_data_from_numpy(ROWS)
    for kwargs, match in [
        ({"model_name": "nope"}, "nope"),
        ({"model_name": "iris", "model_version": "9"}, "9"),
    ]:
        with pytest.raises(InferenceServerException, match=match) as info:
            client.infer(inputs=[inp], **kwargs)
        assert info.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata("nope")
    assert info.value.status() == "StatusCode.NOT_FOUND"


def test_repository_extension(client) -> None:  # type: ignore[no-untyped-def]
    index = {(m.name, m.version): m.state for m in client.get_model_repository_index().models}
    assert index[("iris", "1")] == "READY"
    client.load_model("iris@staging")
    assert client.is_model_ready("iris", "2")


def test_stream_infer(client) -> None:  # type: ignore[no-untyped-def]
    results: queue.Queue[tuple[object, object]] = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    inp = triton.InferInput("input", [2, 4], "FP64")
    inp.set_data_from_numpy(ROWS)
    client.async_stream_infer("iris@production", [inp], request_id="s-1")
    client.async_stream_infer("nope", [inp], request_id="s-2")
    client.stop_stream()
    (ok, no_error), (no_result, error) = results.get(timeout=10), results.get(timeout=10)
    assert no_error is None and ok.as_numpy("predict").tolist() == [0, 2]  # type: ignore[attr-defined]
    assert no_result is None and "nope" in str(error)
