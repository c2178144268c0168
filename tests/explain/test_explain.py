from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelhost.errors import InvalidInput
from modelhost.explain.fairness import fairness_of_version, fairness_report, sensitive_groups
from modelhost.explain.importance import explain_version, permutation_importance, shap_values
from modelhost.pipelines.loaded import LoadedVersion
from modelhost.pipelines.run import run_pipeline
from modelhost.pipelines.spec import parse_spec
from modelhost.registry import Registry
from tests.pipelines.conftest import spec_dict


def test_permutation_importance_finds_the_used_feature() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 1] > 0).astype(int)
    mean, _ = permutation_importance(lambda xx, yy: float(np.mean((xx[:, 1] > 0) == yy)), x, y, repeats=3)
    assert mean.argmax() == 1 and mean[0] == 0 and mean[2] == 0


def test_shap_of_a_linear_function_is_exact() -> None:
    background = np.zeros((1, 3))
    x = np.array([[1.0, 2.0, 3.0]])
    values = shap_values(lambda z: z @ np.array([2.0, 0.0, -1.0]), background, x)
    assert values[0] == pytest.approx([2.0, 0.0, -3.0])


def test_explain_version_writes_plots(registry: Registry, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run_pipeline(parse_spec(spec_dict(search={"trials": 1})), registry, show_progress=False)
    report = explain_version(LoadedVersion(registry, "iris-t"), tmp_path, rows=5, repeats=2)
    assert report["features"][2] == "petal length (cm)"
    # iris is decided by petal measurements
    top = int(np.argmax(report["shap_mean_abs"]))
    assert report["features"][top].startswith("petal")
    for p in report["plots"].values():
        assert Path(p).read_bytes()[:4] == b"\x89PNG"


def test_fairness_report_by_hand() -> None:
    y_true = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    y_pred = np.array([1, 1, 1, 1, 0, 0, 1, 0])
    groups = np.array(["a"] * 4 + ["b"] * 4)
    r = fairness_report(y_true, y_pred, groups)
    assert r["by_group"]["a"]["selection_rate"] == 1.0 and r["by_group"]["b"]["selection_rate"] == 0.25
    assert r["demographic_parity_difference"] == pytest.approx(0.75)
    # a: TPR 1, FPR 1; b: TPR 0.5, FPR 0 → max difference 1
    assert r["equalized_odds_difference"] == pytest.approx(1.0)


def test_sensitive_groups_split_numeric_at_median() -> None:
    groups, how = sensitive_groups(np.arange(100.0), "age")
    assert set(groups) == {"age<=49.5", "age>49.5"} and "median" in how


def test_fairness_of_version_and_errors(registry: Registry) -> None:
    run_pipeline(
        parse_spec(
            spec_dict(data={"source": "sklearn:breast_cancer"}, search={"trials": 1}, register={"name": "bc"})
        ),
        registry,
        show_progress=False,
    )
    report = fairness_of_version(LoadedVersion(registry, "bc"), "mean radius")
    assert sum(g["count"] for g in report["by_group"].values()) == 114
    assert 0 <= report["demographic_parity_difference"] <= 1
    with pytest.raises(InvalidInput, match="'age' is not a feature"):
        fairness_of_version(LoadedVersion(registry, "bc"), "age")
    run_pipeline(parse_spec(spec_dict(search={"trials": 1})), registry, show_progress=False)
    with pytest.raises(InvalidInput, match="binary classifiers"):
        fairness_of_version(LoadedVersion(registry, "iris-t"), "sepal length (cm)")
