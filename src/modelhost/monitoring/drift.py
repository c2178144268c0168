"""Data and prediction drift of a model version against its reference data.

Numeric features: Population Stability Index over the reference's deciles (PSI < 0.1 stable,
0.1–0.2 moderate, ≥ 0.2 major) and the two-sample Kolmogorov–Smirnov test. Categorical features
(few distinct integer values) and predicted classes: chi-squared test of the category frequencies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

PSI_MODERATE = 0.1
PSI_MAJOR = 0.2
P_VALUE = 0.05
MAX_CATEGORIES = 10
_EPS = 1e-4


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population Stability Index of ``current`` against ``reference`` (quantile bins of the reference)."""
    reference, current = np.asarray(reference, float), np.asarray(current, float)
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if edges.size < 2:  # constant reference: any change at all is a shift
        return 0.0 if np.all(current == edges[0]) else float("inf")
    edges[0], edges[-1] = -np.inf, np.inf
    ref_pct = np.histogram(reference, edges)[0] / reference.size
    cur_pct = np.histogram(current, edges)[0] / current.size
    ref_pct, cur_pct = np.clip(ref_pct, _EPS, None), np.clip(cur_pct, _EPS, None)
    return float(np.sum((cur_pct - ref_pct) * np.log(cur_pct / ref_pct)))


def chi2_categories(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Chi-squared statistic and p-value of the current category counts against the reference's mix."""
    cats = np.union1d(np.unique(reference), np.unique(current))
    ref_counts = np.array([(reference == c).sum() for c in cats], float)
    cur_counts = np.array([(current == c).sum() for c in cats], float)
    expected = (ref_counts + 0.5) / (ref_counts + 0.5).sum() * cur_counts.sum()
    stat, p = stats.chisquare(cur_counts, expected)
    return float(stat), float(p)


def is_categorical(column: np.ndarray) -> bool:
    if column.dtype.kind in "OUSb":
        return True
    values = np.unique(column)
    return values.size <= MAX_CATEGORIES and bool(np.all(np.mod(values, 1) == 0))


@dataclass
class FeatureDrift:
    feature: str
    kind: str  # numeric | categorical | prediction
    test: str  # psi+ks | chi2
    score: float  # PSI for numeric features, chi-squared statistic otherwise
    p_value: float
    severity: str  # none | moderate | major

    @property
    def drifted(self) -> bool:
        return self.severity != "none"


@dataclass
class DriftReport:
    model: str
    version: int
    reference_rows: int
    current_rows: int
    features: list[FeatureDrift] = field(default_factory=list)
    note: str = ""

    @property
    def drifted(self) -> bool:
        return any(f.drifted for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "drifted": self.drifted,
            "note": self.note,
            "features": [{**asdict(f), "drifted": f.drifted} for f in self.features],
        }


def feature_drift(name: str, reference: np.ndarray, current: np.ndarray) -> FeatureDrift:
    if is_categorical(reference):
        stat, p = chi2_categories(reference, current)
        return FeatureDrift(name, "categorical", "chi2", stat, p, "major" if p < P_VALUE else "none")
    score = psi(reference, current)
    p = float(stats.ks_2samp(reference.astype(float), current.astype(float)).pvalue)
    severity = "major" if score >= PSI_MAJOR else "moderate" if score >= PSI_MODERATE else "none"
    if severity == "none" and p < P_VALUE / 10:  # KS catches shape changes PSI's deciles can miss
        severity = "moderate"
    return FeatureDrift(name, "numeric", "psi+ks", score, p, severity)


def detect(model: str, version: int, features: list[str], reference: np.ndarray, current: np.ndarray,
           ref_predictions: np.ndarray | None = None, cur_predictions: np.ndarray | None = None,
           min_rows: int = 30) -> DriftReport:  # fmt: skip
    """Compare ``current`` rows (and predictions) with the reference, feature by feature."""
    report = DriftReport(model, version, int(reference.shape[0]), int(current.shape[0]))
    if current.shape[0] < min_rows:
        report.note = f"only {current.shape[0]} logged rows; at least {min_rows} are needed for a drift test"
        return report
    for i, name in enumerate(features):
        report.features.append(feature_drift(name, reference[:, i], current[:, i]))
    if ref_predictions is not None and cur_predictions is not None and len(cur_predictions) >= min_rows:
        ref_p, cur_p = np.asarray(ref_predictions).reshape(-1), np.asarray(cur_predictions).reshape(-1)
        if is_categorical(ref_p):
            stat, p = chi2_categories(ref_p, cur_p)
            report.features.append(FeatureDrift("prediction", "prediction", "chi2", stat, p,
                                                "major" if p < P_VALUE else "none"))  # fmt: skip
        else:
            drift = feature_drift("prediction", ref_p, cur_p)
            drift.kind = "prediction"
            report.features.append(drift)
    return report


def compute_drift(registry: Any, info: Any, limit: int = 5000) -> DriftReport:
    """Drift of a registered version: its reference data against its latest logged predictions.

    ``registry`` is a modelhost Registry and ``info`` a VersionInfo (typed loosely to keep this module
    free of registry imports). Blocking: run it in a thread from async code.
    """
    reference = registry.get_reference(info.model, info.version)
    if reference is None:
        report = DriftReport(info.model, info.version, 0, 0)
        report.note = "this version has no reference data (register it with --reference or set_reference)"
        return report
    logged = registry.recent_predictions(info.model, info.version, limit)
    rows = [r for entry in logged for r in entry.inputs.get(reference.input_name, [])]
    width = reference.sample.shape[1]
    current = np.asarray([r for r in rows if isinstance(r, list) and len(r) == width], dtype=float)
    current = current.reshape(-1, width)
    first_output = info.signature.outputs[0].name if info.signature.outputs else None
    predictions = [p for entry in logged for p in entry.outputs.get(first_output, [])] if first_output else []
    return detect(info.model, info.version, reference.features, reference.sample.astype(float), current,
                  reference.predictions, np.asarray(predictions) if predictions else None)  # fmt: skip
