"""Group fairness of a classifier with fairlearn: metrics by group of a sensitive column, and the
demographic parity and equalized odds differences (0 means equal across groups)."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelhost.errors import InvalidInput

MAX_GROUPS = 10


def sensitive_groups(values: np.ndarray, column: str) -> tuple[np.ndarray, str]:
    """Group labels for ``values``; a numeric column with many values is split at its median."""
    if np.issubdtype(values.dtype, np.number) and len(np.unique(values)) > MAX_GROUPS:
        median = float(np.median(values))
        return np.where(
            values > median, f"{column}>{median:.4g}", f"{column}<={median:.4g}"
        ), f"split at median {median:.4g}"
    return values.astype(str), "as given"


def fairness_report(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
    """fairlearn MetricFrame by group plus the two headline differences."""
    from fairlearn.metrics import (
        MetricFrame,
        count,
        demographic_parity_difference,
        equalized_odds_difference,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    labels = np.unique(np.concatenate([y_true, y_pred]))
    if labels.size > 2:
        raise InvalidInput(
            "fairness metrics (selection rate, equalized odds) are defined for binary classifiers; "
            f"this model predicts {labels.size} classes"
        )
    positive = labels.max()
    yt, yp = (y_true == positive).astype(int), (y_pred == positive).astype(int)
    frame = MetricFrame(
        metrics={
            "count": count,
            "accuracy": accuracy_score,
            "selection_rate": selection_rate,
            "true_positive_rate": true_positive_rate,
        },
        y_true=yt,
        y_pred=yp,
        sensitive_features=groups,
    )
    by_group = {
        str(g): {k: float(v) for k, v in row.items()} for g, row in frame.by_group.to_dict("index").items()
    }
    return {
        "positive_label": positive.item() if isinstance(positive, np.generic) else positive,
        "by_group": by_group,
        "overall": {k: float(v) for k, v in frame.overall.items()},
        "demographic_parity_difference": float(
            demographic_parity_difference(yt, yp, sensitive_features=groups)
        ),
        "equalized_odds_difference": float(equalized_odds_difference(yt, yp, sensitive_features=groups)),
    }


def fairness_of_version(loaded: Any, column: str) -> dict[str, Any]:
    """The report for a registered version on its held-out rows, grouped by ``column``."""
    if not loaded.is_classifier:
        raise InvalidInput(f"{loaded.ref} is not a classifier; fairness metrics need class predictions")
    data = loaded.split()
    if column not in data.feature_names:
        raise InvalidInput(
            f"--sensitive: column '{column}' is not a feature of {loaded.ref}; features: {', '.join(data.feature_names)}"
        )
    j = data.feature_names.index(column)
    groups, how = sensitive_groups(np.asarray(data.x_test[:, j]), column)
    report = fairness_report(np.asarray(data.y_test), np.asarray(loaded.predict(data.x_test)), groups)
    return {"model": loaded.ref, "sha256": loaded.info.sha256, "sensitive": column, "grouping": how, **report}
