"""Held-out metrics, the confusion matrix and the ROC curve plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc")
REGRESSION_METRICS = ("mse", "mae", "r2")
# Metrics where lower is better; the search minimises these.
LOWER_IS_BETTER = {"mse", "mae"}


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None
) -> dict[str, Any]:
    """accuracy, macro F1, ROC AUC (one-vs-rest for several classes) and the confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

    labels = np.unique(np.concatenate([np.asarray(y_true), np.asarray(y_pred)]))
    out: dict[str, Any] = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1": float(
            f1_score(y_true, y_pred, average="binary", pos_label=labels[-1])
            if labels.size == 2
            else f1_score(y_true, y_pred, average="macro")
        ),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "labels": labels.tolist(),
    }
    if proba is not None and len(np.unique(y_true)) >= 2:
        if proba.shape[1] == 2:
            out["roc_auc"] = float(roc_auc_score(y_true, proba[:, 1]))
        elif proba.shape[1] == len(np.unique(y_true)):
            out["roc_auc"] = float(roc_auc_score(y_true, proba, multi_class="ovr"))
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "mse": float(mean_squared_error(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
    }


def score(metric: str, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None) -> float:
    """One metric, for model selection."""
    if metric in REGRESSION_METRICS:
        return float(regression_metrics(y_true, y_pred)[metric])
    values = classification_metrics(y_true, y_pred, proba)
    if metric not in values:
        raise KeyError(metric)
    return float(values[metric])


def roc_png(y_true: np.ndarray, proba: np.ndarray, classes: list[Any], path: Path) -> Path:
    """Save the ROC curve (one curve per class for several classes) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt
    from sklearn.metrics import auc, roc_curve

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    pairs = [(classes[1], proba[:, 1])] if proba.shape[1] == 2 else list(zip(classes, proba.T, strict=False))
    for label, scores in pairs:
        fpr, tpr, _ = roc_curve(np.asarray(y_true) == label, scores)
        ax.plot(fpr, tpr, label=f"{label} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve (held-out set)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
