"""The Ray Serve backend: options, and real inference through a local Ray (2 CPUs)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from modelhost.config import Settings
from modelhost.distributed import make_repository
from modelhost.distributed.ray_serve import RayModelOptions, app_name
from modelhost.errors import InvalidInput
from modelhost.registry import Registry
from modelhost.serving.app import create_app

from ..conftest import make_admin_key


def test_options_come_from_settings_with_per_model_overrides() -> None:
    s = Settings(ray_num_cpus=0.5, ray_model_options={"llm": {"num_gpus": 1, "max_replicas": 4}})
    plain = RayModelOptions.for_model(s, "iris")
    assert plain.deployment_options("a") == {
        "name": "a",
        "ray_actor_options": {"num_cpus": 0.5},
        "num_replicas": 1,
    }
    llm = RayModelOptions.for_model(s, "llm")
    assert llm.size == 4
    assert llm.deployment_options("b") == {
        "name": "b",
        "ray_actor_options": {"num_cpus": 0.5, "num_gpus": 1.0},
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 2.0},
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"gpus": 1}, "unknown Ray option"),
        ({"num_cpus": "many"}, "bad Ray option"),
        ({"max_replicas": 2, "min_replicas": 3}, "below min_replicas"),
        ({"num_replicas": 0}, "must be positive"),
    ],
)
def test_bad_options_are_refused_with_the_reason(override: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        RayModelOptions.for_model(Settings(ray_model_options={"iris": override}), "iris")


def test_app_names_are_safe_for_ray() -> None:
    assert app_name("team/iris.v2", 3) == "modelhost-team_iris_v2-v3"


def test_local_backend_does_not_import_ray(registry: Registry) -> None:
    from modelhost.dataplane.repository import ModelRepository
    from modelhost.monitoring.metrics import Metrics

    repo = make_repository(registry, registry.settings, Metrics())
    assert type(repo) is ModelRepository


@pytest.fixture
def ray_client(ray_local: None, settings: Settings, iris_registry: Registry) -> Iterator[TestClient]:
    s = settings.model_copy(update={"backend": "ray", "ray_num_replicas": 2, "ray_num_cpus": 0.25})
    iris_registry.settings = s
    with TestClient(create_app(s, registry=iris_registry)) as c:
        c.admin_key = make_admin_key(iris_registry, s)  # type: ignore[attr-defined]
        yield c


def test_inference_runs_in_ray_serve_replicas(ray_client: TestClient, iris_model, iris_xy) -> None:  # type: ignore[no-untyped-def]
    from ray import serve

    x, _ = iris_xy
    body = {
        "inputs": [{"name": "input", "shape": [5, 4], "datatype": "FP64", "data": x[:5].ravel().tolist()}]
    }
    r = ray_client.post("/v2/models/iris/infer", json=body)
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["predict"]["data"] == iris_model.predict(x[:5]).tolist()
    np.testing.assert_allclose(
        np.array(out["predict_proba"]["data"]).reshape(5, 3), iris_model.predict_proba(x[:5]), rtol=1e-6
    )
    # The production version runs as its own deployment with the configured two replicas.
    status = serve.status().applications[app_name("iris", 1)]
    assert str(status.status) in ("RUNNING", "ApplicationStatus.RUNNING")
    deployment = status.deployments[app_name("iris", 1)]
    assert sum(deployment.replica_states.values()) == 2

    # Client mistakes are answered by the front, in the protocol's shape, without reaching Ray.
    bad = ray_client.post("/v2/models/iris/infer", json={"inputs": [{**body["inputs"][0], "shape": [5, 3]}]})
    assert bad.status_code == 400 and "shape" in bad.json()["error"]

    # Promotion hot-swaps across deployments: v2 (ONNX) is deployed, then v1's deployment deleted.
    moved = ray_client.put(
        "/api/v1/models/iris/aliases/production",
        json={"version": 2},
        headers={"Authorization": f"Bearer {ray_client.admin_key}"},  # type: ignore[attr-defined]
    )
    assert moved.status_code == 200, moved.text
    fp32 = {"inputs": [{**body["inputs"][0], "datatype": "FP32"}], "outputs": [{"name": "label"}]}
    r = ray_client.post("/v2/models/iris/infer", json=fp32)  # v2 is ONNX: FP32 inputs
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == "2"
    assert r.json()["outputs"][0]["data"] == iris_model.predict(x[:5]).tolist()
    deadline = time.monotonic() + 60  # the old version drains and is deleted in the background
    while app_name("iris", 1) in serve.status().applications and time.monotonic() < deadline:
        time.sleep(0.2)
    apps = serve.status().applications
    assert app_name("iris", 2) in apps and app_name("iris", 1) not in apps
