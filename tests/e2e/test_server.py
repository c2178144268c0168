"""The real server, called with the official Triton HTTP client, our SDK, curl-like httpx and the CLI."""

from __future__ import annotations

import subprocess

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from modelhost.client import Client
from modelhost.errors import InvalidInput, NotFound, ProtectedAlias, Unauthorized

from .conftest import Server, modelhost_cmd

pytestmark = pytest.mark.e2e
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])


def test_demo_serves_iris_production(server: Server) -> None:
    body = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64", "data": ROWS.tolist()}]}
    r = httpx.post(f"{server.url}/v2/models/iris@production/infer", json=body)
    assert r.status_code == 200, r.text
    out = {o["name"]: o["data"] for o in r.json()["outputs"]}
    assert out["predict"] == [0, 2]


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_http(server: Server, binary: bool) -> None:
    c = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("iris@production")
    meta = c.get_model_metadata("iris@production")
    assert meta["inputs"][0]["shape"] == [-1, 4]
    assert c.get_server_metadata()["name"] == "modelhost"
    inp = triton.InferInput("input", list(ROWS.shape), "FP64")
    inp.set_data_from_numpy(ROWS, binary_data=binary)
    outputs = [
        triton.InferRequestedOutput("predict", binary_data=binary),
        triton.InferRequestedOutput("predict_proba", binary_data=binary),
    ]
    res = c.infer("iris@production", [inp], outputs=outputs, request_id="t-1")
    assert res.as_numpy("predict").tolist() == [0, 2]
    assert res.as_numpy("predict_proba").shape == (2, 3)
    assert res.get_response()["id"] == "t-1"
    # no outputs named: the client asks for all of them in binary
    res = c.infer("digits", [_digits_input()], model_version="1")
    assert res.as_numpy("predict").shape == (1,)
    with pytest.raises(InferenceServerException, match="no version 9"):
        c.infer("iris", [inp], model_version="9")
    bad = triton.InferInput("input", [2, 4], "FP32")
    bad.set_data_from_numpy(ROWS.astype(np.float32), binary_data=binary)
    with pytest.raises(InferenceServerException, match="expects FP64"):
        c.infer("iris@production", [bad])
    c.close()


def _digits_input():  # type: ignore[no-untyped-def]
    inp = triton.InferInput("input", [1, 64], "FP64")
    inp.set_data_from_numpy(np.zeros((1, 64)))
    return inp


def test_tritonclient_repository_extension(server: Server) -> None:
    c = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    index = {(m["name"], m["version"]): m["state"] for m in c.get_model_repository_index()}
    assert index[("iris", "1")] == "READY" and ("iris", "2") in index
    c.load_model("iris@staging")
    assert c.is_model_ready("iris", "2")
    c.unload_model("digits")
    assert not c.is_model_ready("digits")
    c.load_model("digits")
    assert c.is_model_ready("digits")
    c.close()


def test_sdk_register_alias_and_infer(server: Server, iris_skops) -> None:  # type: ignore[no-untyped-def]
    with Client(server.url, api_key=server.admin_key) as c:
        assert c.is_ready()
        registered = c.register(
            "flowers", iris_skops, metrics={"accuracy": 0.96}, lineage={"data_hash": "d1"}
        )
        assert registered["version"] == 1 and registered["format"] == "skops"
        c.set_alias("flowers", "production", 1, protect=True)
        result = c.infer("flowers@production", ROWS)
        assert result.model_version == "1" and result["predict"].tolist() == [0, 2]
        binary = c.infer("flowers", {"input": ROWS}, outputs=["predict_proba"], binary=True)
        np.testing.assert_allclose(binary["predict_proba"], result["predict_proba"])
        assert {m["name"] for m in c.list_models()} >= {"iris", "digits", "flowers"}
        assert [v["version"] for v in c.versions("flowers")] == [1]
        c.register("flowers", iris_skops)
        with pytest.raises(ProtectedAlias.__mro__[1]):  # Conflict (409)
            c.set_alias("flowers", "production", 2)
        with pytest.raises(InvalidInput, match="expects"):
            c.infer("flowers", {"input": ROWS[:, :2]})
        with pytest.raises(NotFound):
            c.infer("nope", ROWS)
    with Client(server.url, api_key="mh_live_0123456789ab_" + "x" * 43) as c, pytest.raises(Unauthorized):
        c.versions("flowers")


def test_cli_predict_against_the_server(server: Server) -> None:
    out = subprocess.run(
        [
            *modelhost_cmd(),
            "predict",
            "iris@production",
            "--json",
            "[[6.7, 3.0, 5.2, 2.3]]",
            "--url",
            server.url,
        ],
        capture_output=True,
        text=True,
        env=server.env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert '"model_version": "1"' in out.stdout


def test_server_survives_garbage(server: Server) -> None:
    for body in [b"\x00\xff" * 100, b"{" * 10000, b'{"inputs": [' + b"1," * 1000 + b"1]}", b"null"]:
        r = httpx.post(f"{server.url}/v2/models/iris/infer", content=body)
        assert r.status_code == 400, r.text
        assert "error" in r.json()
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200


def test_metrics_and_status_on_the_real_server(server: Server) -> None:
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
    assert httpx.post(f"{server.url}/v2/models/iris@production/infer", json=body).status_code == 200
    text = httpx.get(f"{server.url}/metrics").text
    assert 'modelhost_requests_total{model="iris",protocol="rest",status="200",version="1"}' in text
    out = subprocess.run([*modelhost_cmd(), "status", "--url", server.url, "--json"], capture_output=True,
                         text=True, env={**server.env, "MODELHOST_API_KEY": server.admin_key}, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert '"model": "iris"' in out.stdout


def test_api_keys_with_the_sdk_and_tritonclient_headers(server: Server) -> None:
    with Client(server.url, api_key=server.admin_key) as admin:
        created = admin.create_key("triton", ["infer:digits"], limits={"rpm": 100})
        assert created["key"].startswith("mh_live_") and "key" not in admin.list_keys()[0]
        c = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
        headers = {"Authorization": f"Bearer {created['key']}"}
        res = c.infer("digits", [_digits_input()], headers=headers)
        assert res.as_numpy("predict").shape == (1,)
        inp = triton.InferInput("input", list(ROWS.shape), "FP64")
        inp.set_data_from_numpy(ROWS)
        with pytest.raises(InferenceServerException, match="may not use model 'iris'"):
            c.infer("iris", [inp], headers={"X-API-Key": created["key"]})
        admin.revoke_key(created["key_id"])
        with pytest.raises(InferenceServerException, match="revoked"):
            c.infer("digits", [_digits_input()], headers=headers)
        c.close()
        assert any(e["action"] == "key.revoke" for e in admin.audit(target=f"key:{created['key_id']}"))
        usage = admin.usage(key_id=created["key_id"], model="digits")
        assert usage and usage[0]["requests"] == 1
