from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from modelhost.config import Settings
from modelhost.pipelines.run import run_pipeline
from modelhost.pipelines.spec import parse_spec
from modelhost.registry import Registry
from modelhost.serving.app import create_app
from tests.pipelines.conftest import spec_dict


@pytest.fixture
def explain_client(settings: Settings, registry: Registry, iris_skops) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    run_pipeline(parse_spec(spec_dict(search={"trials": 1})), registry, show_progress=False)
    registry.register_version("plain", iris_skops)
    with TestClient(create_app(settings, registry=registry)) as c:
        yield c


def _body(rows: list[list[float]]) -> dict:  # type: ignore[type-arg]
    return {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP64",
                "shape": [len(rows), len(rows[0])],
                "data": [v for r in rows for v in r],
            }
        ]
    }


def test_explain_returns_shap_values_that_add_up(explain_client: TestClient) -> None:
    row = [6.3, 3.3, 6.0, 2.5]
    r = explain_client.post("/v2/models/iris-t/explain", json=_body([row]))
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["shap_values"]["shape"] == [1, 4, 3]
    values = np.asarray(out["shap_values"]["data"]).reshape(1, 4, 3)
    base = np.asarray(out["base_values"]["data"])
    proba = explain_client.post(
        "/v2/models/iris-t/infer", json={**_body([row]), "outputs": [{"name": "predict_proba"}]}
    )
    p = np.asarray(proba.json()["outputs"][0]["data"])
    # efficiency: base value + sum of SHAP values = the model's output, per class
    assert base + values[0].sum(axis=0) == pytest.approx(p, abs=1e-6)


def test_explain_errors_are_400_in_oip_shape(explain_client: TestClient) -> None:
    r = explain_client.post("/v2/models/plain/explain", json=_body([[1.0, 2.0, 3.0, 4.0]]))
    assert r.status_code == 400 and "no reference sample" in r.json()["error"]
    r = explain_client.post("/v2/models/iris-t/explain", json=_body([[1.0, 2.0]]))
    assert r.status_code == 400 and "error" in r.json()
    r = explain_client.post("/v2/models/nope/explain", json=_body([[1.0]]))
    assert r.status_code == 404
