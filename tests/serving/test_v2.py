"""Open Inference Protocol v2 REST, in-process over ASGI."""

from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from modelhost.config import Settings
from modelhost.registry import Registry
from modelhost.serving.app import create_app

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def infer_body(
    data: Any = ROWS, datatype: str = "FP64", shape: list[int] | None = None, **extra: Any
) -> dict:  # type: ignore[type-arg]
    shape = shape if shape is not None else list(np.asarray(data).shape)
    return {"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}], **extra}


def test_health_and_server_metadata(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get("/v2").json()
    assert meta["name"] == "modelhost" and "model_repository" in meta["extensions"]


def test_model_metadata_by_name_alias_and_version(client: TestClient) -> None:
    prod = client.get("/v2/models/iris@production").json()
    assert prod["platform"] == "sklearn_skops"
    assert prod["versions"] == ["1", "2"]
    assert prod["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]
    staging = client.get("/v2/models/iris/versions/2").json()
    assert staging["platform"] == "onnxruntime_onnx"
    assert staging["inputs"][0]["datatype"] == "FP32"


def test_infer_returns_predictions_and_echoes_id(client: TestClient, iris_model) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/v2/models/iris@production/infer", json=infer_body(id="req-7"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "req-7" and body["model_name"] == "iris@production" and body["model_version"] == "1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"] == {
        "name": "predict",
        "datatype": "INT64",
        "shape": [2],
        "data": iris_model.predict(np.array(ROWS)).tolist(),
    }
    assert outputs["predict_proba"]["shape"] == [2, 3]
    np.testing.assert_allclose(
        np.reshape(outputs["predict_proba"]["data"], (2, 3)), iris_model.predict_proba(np.array(ROWS))
    )


def test_infer_requested_output_only(client: TestClient) -> None:
    r = client.post("/v2/models/iris/infer", json=infer_body(outputs=[{"name": "predict_proba"}]))
    assert [o["name"] for o in r.json()["outputs"]] == ["predict_proba"]


def test_infer_onnx_version_by_number(client: TestClient) -> None:
    r = client.post("/v2/models/iris/versions/2/infer", json=infer_body(datatype="FP32"))
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == "2"
    assert {o["name"] for o in r.json()["outputs"]} == {"label", "probabilities"}


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b"", 400, "not valid JSON"),
        (orjson.dumps({"inputs": []}), 400, "inputs"),
        (orjson.dumps({"input": []}), 400, "inputs"),
        (orjson.dumps(infer_body(datatype="FP32")), 400, "datatype FP32, but the model expects FP64"),
        (orjson.dumps(infer_body(datatype="FLOAT")), 400, "datatype: Input should be .BOOL."),
        (orjson.dumps(infer_body(data=[["a", "b", "c", "d"]])), 400, "cannot hold strings"),
        (orjson.dumps(infer_body(shape=[2, 3])), 400, "needs 6 elements"),
        (orjson.dumps(infer_body(data=[[1.0, 2.0, 3.0]])), 400, "expects \\[-1, 4\\]"),
        (orjson.dumps(infer_body(data=[1.0, 2.0, 3.0, 4.0])), 400, "expects \\[-1, 4\\]"),
        (
            orjson.dumps(
                {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}
            ),
            400,
            "unknown input",
        ),
        (
            orjson.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64"}]}),
            400,
            "no 'data'",
        ),
        (orjson.dumps(infer_body(outputs=[{"name": "nope"}])), 400, "unknown output"),
        (orjson.dumps(infer_body(extra_field=1)), 400, "extra_field"),
        (orjson.dumps(infer_body(data=[[None] * 4])), 400, "null"),
        (
            b'{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP64","data":[NaN,1,2,3]}]}',
            400,
            "not valid JSON",
        ),
        (orjson.dumps({**infer_body(), "inputs": infer_body()["inputs"] * 2}), 400, "more than once"),
    ],
)
def test_bad_requests_get_oip_errors(client: TestClient, body: bytes, status: int, match: str) -> None:
    r = client.post("/v2/models/iris/infer", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    payload = r.json()
    assert list(payload) == ["error"] and isinstance(payload["error"], str)
    import re

    assert re.search(match, payload["error"]), payload["error"]


def test_unknown_model_version_alias_are_404(client: TestClient) -> None:
    for path, match in [
        ("/v2/models/nope/infer", "'nope' is not registered"),
        ("/v2/models/iris/versions/9/infer", "no version 9"),
        ("/v2/models/iris/versions/abc/infer", "positive integers"),
        ("/v2/models/iris@canary/infer", "no alias 'canary'"),
    ]:
        r = client.post(path, json=infer_body())
        assert r.status_code == 404, (path, r.text)
        assert match in r.json()["error"]
    assert client.get("/v2/models/nope").status_code == 404
    assert client.get("/v2/models/nope/ready").status_code == 404


def test_framework_errors_use_the_protocol_shape(client: TestClient) -> None:
    r = client.get("/v2/nothing/here")
    assert r.status_code == 404 and "no route" in r.json()["error"]
    r = client.delete("/v2/models/iris/infer")
    assert r.status_code == 405 and "not allowed" in r.json()["error"]
    r = client.put(
        "/api/v1/models/iris/aliases/production", content=b"{}", headers={"authorization": "Bearer x"}
    )
    assert r.status_code in (401, 403) and "error" in r.json()


def test_model_ready_and_repository_extension(client: TestClient) -> None:
    assert client.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
    assert client.get("/v2/models/iris/versions/2/ready").status_code == 503  # registered, not loaded
    index = client.post("/v2/repository/index").json()
    states = {(e["name"], e["version"]): e["state"] for e in index}
    assert states == {("iris", "1"): "READY", ("iris", "2"): "UNAVAILABLE"}
    assert client.post("/v2/repository/index", json={"ready": True}).json() == [
        {"name": "iris", "version": "1", "state": "READY", "reason": ""}
    ]
    assert client.post("/v2/repository/models/iris@staging/load").json()["version"] == "2"
    assert client.get("/v2/models/iris/versions/2/ready").status_code == 200
    assert client.post("/v2/repository/models/iris/unload").json()["unloaded_versions"] == ["1", "2"]
    r = client.post("/v2/models/iris/infer", json=infer_body())
    assert r.status_code == 503 and "not loaded" in r.json()["error"]
    assert client.post("/v2/repository/models/iris/load").status_code == 200
    assert client.post("/v2/models/iris/infer", json=infer_body()).status_code == 200
    r = client.post("/v2/repository/models/nope/load")
    assert r.status_code == 404 and "error" in r.json()
    r = client.post("/v2/repository/index", content=b"{bad")
    assert r.status_code == 400


def test_lazy_load_on_first_request(settings: Settings, iris_registry: Registry) -> None:
    app = create_app(settings.model_copy(update={"load_on_start": False}), registry=iris_registry)
    with TestClient(app) as c:
        assert c.get("/v2/models/iris/ready").status_code == 503
        assert c.post("/v2/models/iris/infer", json=infer_body()).status_code == 200
        assert c.get("/v2/models/iris/ready").status_code == 200


def test_no_lazy_load_when_disabled(settings: Settings, iris_registry: Registry) -> None:
    app = create_app(
        settings.model_copy(update={"load_on_start": False, "lazy_load": False}), registry=iris_registry
    )
    with TestClient(app) as c:
        r = c.post("/v2/models/iris/infer", json=infer_body())
        assert r.status_code == 503 and "/load" in r.json()["error"]


def test_tampered_artifact_is_not_served(settings: Settings, iris_registry: Registry) -> None:
    from pathlib import Path

    v = iris_registry.get_version("iris", 2)
    Path(v.artifact_uri).write_bytes(Path(v.artifact_uri).read_bytes() + b"x")
    with TestClient(create_app(settings, registry=iris_registry)) as c:
        r = c.post("/v2/repository/models/iris@staging/load")
        assert r.status_code == 500 and "integrity" in r.json()["error"]
        assert c.post("/v2/models/iris@production/infer", json=infer_body()).status_code == 200


def test_body_size_limit(settings: Settings, iris_registry: Registry) -> None:
    app = create_app(settings.model_copy(update={"max_body_bytes": 200}), registry=iris_registry)
    with TestClient(app) as c:
        r = c.post("/v2/models/iris/infer", json=infer_body(data=[[1.0, 2.0, 3.0, 4.0]] * 20))
        assert r.status_code == 413 and "limit" in r.json()["error"]
        assert (
            c.post("/v2/models/iris/infer", json=infer_body(data=[[1.0, 2.0, 3.0, 4.0]])).status_code == 200
        )


def test_binary_tensor_extension(client: TestClient) -> None:
    x = np.array(ROWS, dtype=np.float64)
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [2, 4],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "predict", "parameters": {"binary_data": True}}, {"name": "predict_proba"}],
        }
    )
    r = client.post(
        "/v2/models/iris/infer",
        content=header + x.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    head = orjson.loads(r.content[:n])
    pred = head["outputs"][0]
    assert pred["parameters"]["binary_data_size"] == 16 and "data" not in pred
    assert np.frombuffer(r.content[n:], dtype="<i8").tolist() == [0, 2]
    assert len(head["outputs"][1]["data"]) == 6
    bad = client.post(
        "/v2/models/iris/infer",
        content=header + x.tobytes()[:-8],
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert bad.status_code == 400 and "runs past" in bad.json()["error"]
    bad = client.post(
        "/v2/models/iris/infer", content=header, headers={"Inference-Header-Content-Length": "x"}
    )
    assert bad.status_code == 400


def test_openapi_is_published(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/v2/models/{model_name}/infer" in spec["paths"]
    assert "InferenceRequestModel" in spec["components"]["schemas"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert all("422" not in op["responses"] for ops in spec["paths"].values() for op in ops.values())


def test_strict_readiness_reports_failed_models(settings: Settings, iris_registry: Registry) -> None:
    from pathlib import Path

    v = iris_registry.get_version("iris", 1)
    Path(v.artifact_uri).write_bytes(Path(v.artifact_uri).read_bytes() + b"tampered")
    for strict, status in ((False, 200), (True, 503)):
        app = create_app(settings.model_copy(update={"strict_readiness": strict}), registry=iris_registry)
        with TestClient(app) as c:
            r = c.get("/v2/health/ready")
            assert r.status_code == status, r.text
            if strict:
                assert "iris/1" in r.json()["error"] and "integrity" in r.json()["error"]
