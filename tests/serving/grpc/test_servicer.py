"""The OIP v2 gRPC service in-process: the app's lifespan starts it, a real channel calls it."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import numpy as np
import pytest
from fastapi.testclient import TestClient

from modelhost.config import Settings
from modelhost.dataplane.plane import DataPlane
from modelhost.dataplane.repository import ModelRepository
from modelhost.registry import Registry
from modelhost.serving.app import create_app
from modelhost.serving.grpc.protos import oip_v2_pb2 as pb
from modelhost.serving.grpc.server import GrpcServer, GrpcStartError
from modelhost.serving.grpc.service import SERVICE_NAME, InferenceStub

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
REST_BODY = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64", "data": ROWS.tolist()}]}


def infer_request(rows: np.ndarray = ROWS, model: str = "iris@production", **kw: Any) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name=model, **kw)
    inp = req.inputs.add(name="input", datatype="FP64", shape=list(rows.shape))
    inp.contents.fp64_contents.extend(rows.ravel().tolist())
    return req


def rpc_error(call: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request)
    return info.value


def test_health_and_server_metadata(stub: InferenceStub) -> None:
    assert stub.ServerLive(pb.ServerLiveRequest()).live is True
    assert stub.ServerReady(pb.ServerReadyRequest()).ready is True
    meta = stub.ServerMetadata(pb.ServerMetadataRequest())
    assert meta.name == "modelhost" and "model_repository" in meta.extensions


def test_model_metadata_matches_rest(stub: InferenceStub, app_client: TestClient) -> None:
    meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="iris@production"))
    rest = app_client.get("/v2/models/iris@production").json()
    assert meta.name == rest["name"] and list(meta.versions) == rest["versions"] == ["1", "2"]
    assert meta.platform == "sklearn_skops"
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("input", "FP64", [-1, 4])]
    assert {t.name for t in meta.outputs} == {"predict", "predict_proba"}
    v2 = stub.ModelMetadata(pb.ModelMetadataRequest(name="iris", version="2"))
    assert v2.platform == "onnxruntime_onnx" and v2.inputs[0].datatype == "FP32"


def test_model_ready(stub: InferenceStub) -> None:
    assert stub.ModelReady(pb.ModelReadyRequest(name="iris@production")).ready is True
    # version 2 is registered but not loaded at start-up (only the default version is)
    assert stub.ModelReady(pb.ModelReadyRequest(name="iris", version="2")).ready is False
    err = rpc_error(stub.ModelReady, pb.ModelReadyRequest(name="nope"))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "nope" in err.details()


def test_infer_typed_contents(stub: InferenceStub, iris_model) -> None:  # type: ignore[no-untyped-def]
    resp = stub.ModelInfer(infer_request(id="req-7"))
    assert (resp.model_name, resp.model_version, resp.id) == ("iris@production", "1", "req-7")
    assert not resp.raw_output_contents
    out = {o.name: o for o in resp.outputs}
    assert out["predict"].datatype == "INT64" and list(out["predict"].shape) == [2]
    assert list(out["predict"].contents.int64_contents) == iris_model.predict(ROWS).tolist()
    proba = np.reshape(out["predict_proba"].contents.fp64_contents, tuple(out["predict_proba"].shape))
    np.testing.assert_allclose(proba, iris_model.predict_proba(ROWS))


def test_infer_raw_contents_answers_raw(stub: InferenceStub, iris_model) -> None:  # type: ignore[no-untyped-def]
    req = pb.ModelInferRequest(model_name="iris", model_version="1")
    req.inputs.add(name="input", datatype="FP64", shape=[2, 4])
    req.raw_input_contents.append(ROWS.astype("<f8").tobytes())
    req.outputs.add(name="predict")
    resp = stub.ModelInfer(req)
    assert [o.name for o in resp.outputs] == ["predict"] and not resp.outputs[0].HasField("contents")
    assert np.frombuffer(resp.raw_output_contents[0], "<i8").tolist() == iris_model.predict(ROWS).tolist()


def test_infer_onnx_fp32_and_raw_output_parameter(stub: InferenceStub) -> None:
    req = pb.ModelInferRequest(model_name="iris@staging")
    inp = req.inputs.add(name="input", datatype="FP32", shape=[2, 4])
    inp.contents.fp32_contents.extend(ROWS.ravel().tolist())
    req.parameters["raw_output"].bool_param = True
    resp = stub.ModelInfer(req)
    assert resp.model_version == "2" and len(resp.raw_output_contents) == len(resp.outputs) == 2


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda r: r.inputs[0].ClearField("contents"), "has no contents"),
        (lambda r: r.inputs[0].contents.fp64_contents.pop(), "needs 8 elements but fp64_contents has 7"),
        (lambda r: setattr(r.inputs[0], "datatype", "FP32"), "fp64_contents, which does not hold FP32"),
        (lambda r: setattr(r.inputs[0], "name", "x"), "unknown input(s) 'x'"),
        (lambda r: r.inputs[0].shape.__setitem__(0, -2), "negative dimension"),
        (lambda r: setattr(r.inputs[0], "datatype", "FLOAT"), "unknown datatype 'FLOAT'"),
        (lambda r: r.outputs.add(name="nope"), "unknown output(s) 'nope'"),
        (lambda r: r.raw_input_contents.append(b"\0" * 64), "use one or the other"),
        (lambda r: r.raw_input_contents.extend([b"", b""]), "2 entries but there are 1 inputs"),
        (lambda r: setattr(r, "model_name", ""), "model name is required"),
    ],
)
def test_bad_inputs_are_invalid_argument(stub: InferenceStub, mutate: Any, match: str) -> None:
    req = infer_request()
    mutate(req)
    err = rpc_error(stub.ModelInfer, req)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert match in err.details()


def test_raw_contents_of_the_wrong_size(stub: InferenceStub) -> None:
    req = pb.ModelInferRequest(model_name="iris")
    req.inputs.add(name="input", datatype="FP64", shape=[2, 4])
    req.raw_input_contents.append(b"\0" * 63)
    err = rpc_error(stub.ModelInfer, req)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "needs 64 bytes, got 63" in err.details()


def test_unknown_model_version_alias_are_not_found(stub: InferenceStub, app_client: TestClient) -> None:
    for req in (
        infer_request(model="nope"),
        infer_request(model="iris", model_version="9"),
        infer_request(model="iris@canary"),
    ):
        err = rpc_error(stub.ModelInfer, req)
        assert err.code() == grpc.StatusCode.NOT_FOUND
        # the same message as the REST answer
        version = f"/versions/{req.model_version}" if req.model_version else ""
        rest = app_client.post(f"/v2/models/{req.model_name}{version}/infer", json=REST_BODY)
        assert rest.status_code == 404 and rest.json()["error"] == err.details()


def test_repository_extension(stub: InferenceStub) -> None:
    index = stub.RepositoryIndex(pb.RepositoryIndexRequest())
    assert {(m.name, m.version, m.state) for m in index.models} == {
        ("iris", "1", "READY"),
        ("iris", "2", "UNAVAILABLE"),
    }
    ready = stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True))
    assert [(m.name, m.version) for m in ready.models] == [("iris", "1")]
    stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="iris"))
    assert stub.ModelReady(pb.ModelReadyRequest(name="iris", version="1")).ready is False
    stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="iris@staging"))
    assert stub.ModelReady(pb.ModelReadyRequest(name="iris", version="2")).ready is True
    err = rpc_error(stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name="nope"))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_not_loaded_without_lazy_load_is_unavailable(settings: Settings, iris_registry: Registry) -> None:
    from .conftest import free_port

    s = settings.model_copy(update={"grpc_port": free_port(), "load_on_start": False, "lazy_load": False})
    with (
        TestClient(create_app(s, registry=iris_registry)),
        grpc.insecure_channel(f"127.0.0.1:{s.grpc_port}") as channel,
    ):
        err = rpc_error(InferenceStub(channel).ModelInfer, infer_request())
    assert err.code() == grpc.StatusCode.UNAVAILABLE and "not loaded" in err.details()


def test_methods_outside_the_service_are_unimplemented(stub: InferenceStub, grpc_settings: Settings) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_settings.grpc_port}") as channel:
        config = channel.unary_unary(f"/{SERVICE_NAME}/ModelConfig")
        with pytest.raises(grpc.RpcError) as info:
            config(b"")
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_message_size_limit_is_resource_exhausted(settings: Settings, iris_registry: Registry) -> None:
    from .conftest import free_port

    s = settings.model_copy(update={"grpc_port": free_port(), "grpc_max_message_bytes": 1024})
    big = np.zeros((100, 4))
    with (
        TestClient(create_app(s, registry=iris_registry)),
        grpc.insecure_channel(f"127.0.0.1:{s.grpc_port}") as channel,
    ):
        stub = InferenceStub(channel)
        err = rpc_error(stub.ModelInfer, infer_request(big))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stub.ModelInfer(infer_request()).outputs  # small requests still pass


def test_port_in_use_is_a_clear_start_error(settings: Settings, iris_registry: Registry) -> None:
    async def main() -> None:
        plane = DataPlane(iris_registry, ModelRepository(iris_registry, settings), settings)
        first = await GrpcServer.start(plane, settings, port=0)
        try:
            with pytest.raises(GrpcStartError, match="MODELHOST_GRPC_PORT"):
                await GrpcServer.start(plane, settings, port=first.port)
        finally:
            await first.stop()

    asyncio.run(main())


def test_grpc_port_zero_disables(client: TestClient, settings: Settings) -> None:
    assert settings.grpc_port == 0
    assert client.get("/v2/health/ready").status_code == 200


def test_stream_infer_answers_in_order_and_isolates_errors(stub: InferenceStub, iris_model) -> None:  # type: ignore[no-untyped-def]
    requests = [infer_request(id="a"), infer_request(model="nope", id="b"), infer_request(ROWS[:1], id="c")]
    responses = list(stub.ModelStreamInfer(iter(requests)))
    assert [r.infer_response.id for r in responses] == ["a", "b", "c"]
    assert [r.error_message for r in responses] == ["", "model 'nope' is not registered", ""]
    last = {o.name: o for o in responses[2].infer_response.outputs}
    assert list(last["predict"].contents.int64_contents) == iris_model.predict(ROWS[:1]).tolist()
