"""End-to-end pipeline runs on tiny data: metrics match a direct computation, lineage is complete,
the gate moves aliases, and a failing run registers nothing."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, r2_score

from modelhost.errors import InvalidInput, ModelNotFound
from modelhost.pipelines.loaded import LoadedVersion
from modelhost.pipelines.run import run_pipeline
from modelhost.pipelines.spec import parse_spec
from modelhost.registry import Registry
from tests.pipelines.conftest import TORCH_MLP, spec_dict


def test_sklearn_pipeline_registers_with_lineage_and_gate(registry: Registry) -> None:
    spec = parse_spec(
        spec_dict(
            register={"name": "iris-t", "alias": "staging"},
            promote_if={"when": "accuracy > production + 0.01"},
        )
    )
    first = run_pipeline(spec, registry, show_progress=False)
    v = first.version
    assert registry.get_alias("iris-t", "staging").version == 1
    assert first.promoted is True and registry.get_alias("iris-t", "production").version == 1
    lineage = v.lineage
    assert len(lineage["data_hash"]) == 64 and lineage["code_version"]
    assert set(lineage["reference_profile"]["features"]) == set(lineage["feature_names"])
    assert first.search is not None and first.search.trials == 3
    assert (registry.settings.home / "runs" / "iris-t" / "roc.png").read_bytes()[:4] == b"\x89PNG"
    # metrics equal a direct scikit-learn computation on the rebuilt held-out set
    loaded = LoadedVersion(registry, "iris-t@staging")
    data = loaded.split()
    assert v.metrics["accuracy"] == pytest.approx(accuracy_score(data.y_test, loaded.predict(data.x_test)))
    assert np.asarray(v.metrics["confusion_matrix"]).sum() == len(data.y_test)
    # same data and spec: not better by 0.01, so production stays on v1
    second = run_pipeline(spec, registry, show_progress=False)
    assert second.promoted is False and "fail" in second.gate
    assert registry.get_alias("iris-t", "production").version == 1
    assert registry.get_alias("iris-t", "staging").version == 2


def test_failed_run_registers_nothing(registry: Registry) -> None:
    bad = parse_spec(spec_dict(candidates=[{"type": "xgboost"}]))
    with pytest.raises(InvalidInput, match=r"candidates.0.type: 'xgboost'"):
        run_pipeline(bad, registry, show_progress=False)
    bad_param = parse_spec(spec_dict(candidates=[{"type": "logistic_regression", "params": {"C": -1}}]))
    with pytest.raises(InvalidInput, match="logistic_regression"):
        run_pipeline(bad_param, registry, show_progress=False)
    bad_gate = parse_spec(spec_dict(promote_if={"when": "mse < 3"}))
    with pytest.raises(InvalidInput, match="metric 'mse' is not computed"):
        run_pipeline(bad_gate, registry, show_progress=False)
    with pytest.raises(ModelNotFound):
        registry.get_model("iris-t")


def test_torch_regression_metrics_match(registry: Registry) -> None:
    spec = parse_spec(
        spec_dict(
            framework="torch",
            task="regression",
            data={"source": "synthetic:smart_grid", "rows": 400},
            candidates=[{**TORCH_MLP, "params": {**TORCH_MLP["params"], "epochs": 30}}],
            cv={"folds": 0},
            register={"name": "grid-t"},
        )
    )
    result = run_pipeline(spec, registry, show_progress=False)
    assert result.version.format == "safetensors" and result.version.runtime == "torch"
    loaded = LoadedVersion(registry, "grid-t")
    data = loaded.split()
    assert result.metrics["r2"] == pytest.approx(r2_score(data.y_test, loaded.predict(data.x_test)), abs=1e-5)
    assert result.metrics["r2"] > 0.5  # the scaler folded into the first layer works on raw inputs


def test_keras_sigmoid_binary(registry: Registry) -> None:
    spec = parse_spec(
        spec_dict(
            framework="keras",
            data={"source": "sklearn:breast_cancer"},
            candidates=[
                {"type": "mlp", "params": {"hidden": [8], "output": "sigmoid", "epochs": 10, "lr": 0.01}}
            ],
            cv={"folds": 0},
            metric="roc_auc",
            register={"name": "bc-t"},
        )
    )
    result = run_pipeline(spec, registry, show_progress=False)
    assert result.version.format == "keras"
    loaded = LoadedVersion(registry, "bc-t")
    data = loaded.split()
    proba = loaded.predict_proba(data.x_test)
    assert proba.shape == (len(data.y_test), 2) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert result.metrics["accuracy"] == pytest.approx(
        accuracy_score(data.y_test, loaded.predict(data.x_test))
    )
    assert result.metrics["roc_auc"] > 0.9


def test_federated_vs_centralised(registry: Registry) -> None:
    spec = parse_spec(
        spec_dict(
            framework="torch",
            candidates=[TORCH_MLP],
            register={"name": "fed-t"},
            federated={"clients": 3, "rounds": 4, "local_epochs": 2},
        )
    )
    result = run_pipeline(spec, registry, show_progress=False)
    history = result.metrics["federated_rounds_accuracy"]
    assert len(history) == 4 and history[-1] == pytest.approx(result.metrics["accuracy"])
    assert result.metrics["accuracy"] > 0.8 and "centralized_accuracy" in result.metrics
    noisy = spec.model_copy(update={"federated": spec.federated.model_copy(update={"dp_noise": 0.05})})  # type: ignore[union-attr]
    assert run_pipeline(noisy, registry, show_progress=False).version.version == 2


def test_federated_needs_torch(registry: Registry) -> None:
    spec = parse_spec(spec_dict(federated={"clients": 2}))
    with pytest.raises(InvalidInput, match="framework: torch"):
        run_pipeline(spec, registry, show_progress=False)
