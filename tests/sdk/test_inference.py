"""Health, OIP v2 inference (JSON and binary tensors) and error mapping through the SDK, sync and
async, against the real app. The OpenAI-compatible and task routes: tests/serving/test_sdk_models.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelhost import AsyncClient, Client
from modelhost.errors import InvalidInput, NotFound
from tests.sdk.conftest import RunAsync

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]
BECKETT = Path(__file__).parent.parent / "data" / "beckett.wav"
HI = [{"role": "user", "content": "What is the capital of France?"}]


def test_health_metadata_and_repository(sdk: Client) -> None:
    assert sdk.is_live() and sdk.is_ready()
    assert sdk.is_model_ready("iris@production") and not sdk.is_model_ready("nope")
    assert sdk.server_metadata().name == "modelhost"
    meta = sdk.model_metadata("iris", 2)
    assert meta.inputs[0].name == "input" and meta.inputs[0].shape[-1] == 4 and meta["platform"]
    index = {(e.name, e.version): e.state for e in sdk.repository_index()}
    assert index[("iris", "1")] == "READY" and ("iris", "2") in index
    assert sdk.list_models() == sdk.repository_index()  # the former name still works
    sdk.unload("iris")
    assert not sdk.is_model_ready("iris")
    sdk.load("iris")
    assert sdk.is_model_ready("iris")


def test_infer_json_binary_named_and_bare_inputs(sdk: Client) -> None:
    by_json = sdk.infer("iris@production", ROWS, request_id="r1")
    assert by_json.model_version == "1" and by_json.id == "r1"
    assert by_json["predict"].tolist() == [0, 2] and by_json["predict_proba"].shape == (2, 3)
    by_binary = sdk.infer("iris", {"input": np.array(ROWS, dtype=np.float32)}, version=2, binary=True)
    assert by_binary.model_version == "2" and by_binary["label"].tolist() == [0, 2]  # ONNX output names
    only = sdk.infer("iris", ROWS, outputs=["predict_proba"], binary=True)
    assert list(only) == ["predict_proba"] and np.allclose(only["predict_proba"].sum(axis=1), 1.0)
    raw = sdk.infer_request("iris", {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64",
                                                 "data": ROWS[0]}]})  # fmt: skip
    assert raw["outputs"][0]["data"] == [0]


def test_oip_errors_map_to_the_error_tree(sdk: Client) -> None:
    with pytest.raises(NotFound) as not_found:
        sdk.infer("nope", {"input": ROWS})
    assert not_found.value.status_code == 404 and "nope" in not_found.value.message
    with pytest.raises(InvalidInput) as bad:
        sdk.infer("iris", {"input": [[1.0, 2.0]]})
    assert bad.value.status_code == 400 and bad.value.body["error"] == bad.value.message
    with pytest.raises(InvalidInput, match="reference"):
        sdk.explain("iris", ROWS[:1])  # no reference sample registered for SHAP


def test_async_inference_and_errors(run_async: RunAsync) -> None:
    async def scenario(c: AsyncClient) -> None:
        assert await c.is_live() and await c.is_model_ready("iris@production")
        assert (await c.model_metadata("iris")).inputs[0].datatype == "FP64"
        result = await c.infer("iris@staging", ROWS, binary=True)
        assert result.model_version == "2" and result["label"].tolist() == [0, 2]
        assert {(e.name, e.version) for e in await c.repository_index(ready_only=True)} == {
            ("iris", "1"),
            ("iris", "2"),
        }
        with pytest.raises(NotFound):
            await c.infer("nope", {"input": ROWS})

    run_async(scenario)
