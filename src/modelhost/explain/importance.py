"""Global and per-row explanations for tabular models of any runtime.

Permutation importance: the drop of the held-out score when one feature's column is shuffled
(Breiman 2001), averaged over repeats. SHAP: model-agnostic Shapley values from shap's permutation
explainer, with a small background sample (the version's ``lineage.reference_profile.background``
or training rows) as the baseline distribution.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.errors import InvalidInput


def permutation_importance(
    score_fn: Callable[[np.ndarray, np.ndarray], float],
    x: np.ndarray,
    y: np.ndarray,
    repeats: int = 5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std, per feature, of (baseline score - score with that feature shuffled)."""
    rng = np.random.default_rng(seed)
    baseline = score_fn(x, y)
    drops = np.zeros((x.shape[1], repeats))
    for j in range(x.shape[1]):
        for r in range(repeats):
            shuffled = x.copy()
            shuffled[:, j] = rng.permutation(shuffled[:, j])
            drops[j, r] = baseline - score_fn(shuffled, y)
    return drops.mean(axis=1), drops.std(axis=1)


def explained_function(
    predict: Callable[[np.ndarray], np.ndarray], predict_proba: Callable[[np.ndarray], np.ndarray] | None
) -> Callable[[np.ndarray], np.ndarray]:
    """What SHAP explains: class probabilities for classifiers, the prediction for regressors."""
    if predict_proba is not None:
        return lambda x: np.asarray(predict_proba(x), dtype=float)
    return lambda x: np.asarray(predict(x), dtype=float).reshape(len(x), -1)[:, 0]


def shap_values(
    fn: Callable[[np.ndarray], np.ndarray], background: np.ndarray, x: np.ndarray, seed: int = 0
) -> np.ndarray:
    """Shapley values, shape [rows, features] (regression) or [rows, features, classes]."""
    import shap

    if background.size == 0:
        raise InvalidInput("SHAP needs background rows; the version has no reference sample")
    masker = shap.maskers.Independent(background, max_samples=len(background))
    explainer = shap.explainers.Permutation(fn, masker, seed=seed)
    # max_evals must cover 2 * features + 1 for the permutation explainer.
    result = explainer(x, max_evals=max(2 * x.shape[1] + 1, 100), silent=True)
    return np.asarray(result.values)


def global_shap(values: np.ndarray) -> np.ndarray:
    """Mean |SHAP| per feature (summed over classes)."""
    v = np.abs(values)
    return v.mean(axis=0).sum(axis=-1) if v.ndim == 3 else v.mean(axis=0)


def bar_png(names: list[str], values: np.ndarray, title: str, path: Path, top: int = 15) -> Path:
    """A horizontal bar chart of the ``top`` largest values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(values)[::-1][:top][::-1]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(order) + 1.2), dpi=100)
    ax.barh([names[i] for i in order], values[order])
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def explain_version(loaded: Any, out_dir: Path, rows: int = 50, repeats: int = 5) -> dict[str, Any]:
    """Permutation importance and global SHAP for a registered version, on its held-out rows;
    writes two PNGs and returns the numbers."""
    from sklearn.metrics import accuracy_score, r2_score

    data = loaded.split()
    x, y = np.asarray(data.x_test, dtype=float), data.y_test
    if loaded.is_classifier:
        metric, score_fn = "accuracy", lambda xx, yy: float(accuracy_score(yy, loaded.predict(xx)))
    else:
        metric, score_fn = (
            "r2",
            lambda xx, yy: float(r2_score(yy, np.asarray(loaded.predict(xx), dtype=float))),
        )
    mean, std = permutation_importance(score_fn, x, y, repeats)
    background = np.asarray(
        loaded.info.lineage.get("reference_profile", {}).get("background") or data.x_train[:20], dtype=float
    )
    fn = explained_function(loaded.predict, loaded.predict_proba if loaded.is_classifier else None)
    values = shap_values(fn, background, x[:rows])
    g = global_shap(values)
    names = data.feature_names
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = {
        "permutation_importance": str(
            bar_png(
                names,
                mean,
                f"permutation importance (drop in {metric})",
                out_dir / "permutation_importance.png",
            )
        ),
        "shap": str(bar_png(names, g, "mean |SHAP value|", out_dir / "shap_global.png")),
    }
    return {
        "model": loaded.ref,
        "metric": metric,
        "features": names,
        "permutation_importance": {"mean": mean.tolist(), "std": std.tolist()},
        "shap_mean_abs": g.tolist(),
        "rows_explained": int(min(rows, len(x))),
        "plots": plots,
    }
