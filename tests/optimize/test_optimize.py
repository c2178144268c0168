from __future__ import annotations

import pytest

from modelhost.errors import InvalidInput
from modelhost.optimize.run import OptimizeRequest, optimize
from modelhost.pipelines.run import run_pipeline
from modelhost.pipelines.spec import parse_spec
from modelhost.registry import Registry
from tests.pipelines.conftest import TORCH_MLP, spec_dict


@pytest.fixture
def torch_iris(registry: Registry) -> Registry:
    spec = parse_spec(
        spec_dict(
            framework="torch",
            candidates=[TORCH_MLP],
            cv={"folds": 0},
            register={"name": "m", "alias": "staging"},
        )
    )
    run_pipeline(spec, registry, show_progress=False)
    return registry


def test_all_steps_register_versions_and_measure(torch_iris: Registry) -> None:
    req = OptimizeRequest(
        to_onnx=True, quantize="int8", prune=0.5, distill_from="m@staging", student_hidden=(8,)
    )
    rows = optimize(torch_iris, "m@staging", req, repeats=5)
    assert [r.label for r in rows] == ["base", "onnx", "quantize int8", "prune 0.5", "distill"]
    versions = {v.version: v for v in torch_iris.list_versions("m")}
    assert [versions[i].format for i in (2, 3, 4, 5)] == ["onnx", "onnx", "safetensors", "safetensors"]
    assert versions[4].params["sparsity"] == pytest.approx(0.5, abs=0.02)
    assert (
        versions[5].lineage["optimized_from"]["version"] == 1
        and versions[5].params["teacher"] == "m/versions/1"
    )
    base = rows[0]
    # the exported ONNX model computes the same function
    assert rows[1].quality == pytest.approx(base.quality, abs=1e-9)
    for r in rows:
        assert r.size_bytes > 0 and r.latency_ms_p50 > 0 and r.quality_name == "accuracy"
    assert rows[4].size_bytes < base.size_bytes  # 8 hidden units instead of 16
    assert rows[4].quality > 0.7


def test_bad_requests(torch_iris: Registry) -> None:
    with pytest.raises(InvalidInput, match="nothing to do"):
        optimize(torch_iris, "m", OptimizeRequest())
    with pytest.raises(InvalidInput, match="--prune takes a fraction"):
        optimize(torch_iris, "m", OptimizeRequest(prune=1.5), repeats=2)
    with pytest.raises(InvalidInput, match="--quantize"):
        optimize(torch_iris, "m", OptimizeRequest(quantize="int3"), repeats=2)


def test_prune_needs_torch(registry: Registry, iris_skops) -> None:  # type: ignore[no-untyped-def]
    run_pipeline(parse_spec(spec_dict(register={"name": "s"})), registry, show_progress=False)
    with pytest.raises(InvalidInput, match="--prune works on PyTorch"):
        optimize(registry, "s", OptimizeRequest(prune=0.5), repeats=2)
    registry.register_version("plain", iris_skops)
    with pytest.raises(InvalidInput, match="not trained by a modelhost pipeline"):
        optimize(registry, "plain", OptimizeRequest(to_onnx=True), repeats=2)


def test_failing_step_registers_nothing(registry: Registry) -> None:
    spec = spec_dict(
        task="regression",
        data={"source": "synthetic:smart_grid", "rows": 200},
        candidates=[{"type": "gradient_boosting", "params": {"n_estimators": 5}}],
        cv={"folds": 0},
        register={"name": "g"},
    )
    run_pipeline(parse_spec(spec), registry, show_progress=False)
    # the ONNX conversion succeeds, the int8 step cannot quantize a tree ensemble: nothing is registered
    with pytest.raises(InvalidInput, match="cannot quantize this graph"):
        optimize(registry, "g", OptimizeRequest(to_onnx=True, quantize="int8"), repeats=2)
    assert [v.version for v in registry.list_versions("g")] == [1]
