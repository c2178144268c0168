"""Data sources for pipelines, their validation, fingerprint (data hash) and drift reference profile."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from modelhost.errors import InvalidInput
from modelhost.pipelines.spec import DataSpec

SKLEARN_SETS = ("iris", "digits", "breast_cancer", "diabetes", "wine")
SYNTHETIC_SETS = ("smart_grid",)
PROFILE_BINS = 10
BACKGROUND_ROWS = 20
MAX_CLASSES = 100  # a numeric target with more distinct values is taken as continuous


@dataclass
class Dataset:
    """Features and target, as loaded and checked."""

    x: pd.DataFrame
    y: pd.Series
    target: str

    @property
    def feature_names(self) -> list[str]:
        return [str(c) for c in self.x.columns]


def smart_grid(rows: int, seed: int) -> pd.DataFrame:
    """Synthetic hourly electricity load of a feeder: daily and weekly cycles, heating/cooling
    driven by temperature, noise. Target ``load_mw`` is next-hour load from calendar, weather and lags."""
    rng = np.random.default_rng(seed)
    hours = np.arange(rows + 24)
    hour_of_day, day_of_week = hours % 24, (hours // 24) % 7
    temp = 12 + 10 * np.sin(2 * np.pi * hours / (24 * 365)) + 6 * np.sin(2 * np.pi * (hour_of_day - 9) / 24)
    temp = temp + rng.normal(0, 1.5, hours.size)
    daily = 1.0 + 0.35 * np.sin(2 * np.pi * (hour_of_day - 7) / 24) + 0.2 * (hour_of_day >= 18)
    weekend = np.where(day_of_week >= 5, 0.85, 1.0)
    hvac = 0.04 * np.abs(temp - 18)
    load = 50 * (daily * weekend + hvac) + rng.normal(0, 1.5, hours.size)
    frame = pd.DataFrame(
        {
            "hour": hour_of_day,
            "weekday": day_of_week,
            "temperature_c": temp,
            "load_lag_1h": np.roll(load, 1),
            "load_lag_24h": np.roll(load, 24),
            "load_mw": load,
        }
    )
    return frame.iloc[24:].reset_index(drop=True)  # drop rows whose lags wrapped around


def _read_frame(spec: DataSpec) -> tuple[pd.DataFrame, str | None]:
    source = spec.source
    if source.startswith("sklearn:"):
        import sklearn.datasets as sd

        name = source.split(":", 1)[1]
        if name not in SKLEARN_SETS:
            raise InvalidInput(
                f"data.source: unknown scikit-learn data set '{name}'; known: {', '.join(SKLEARN_SETS)}"
            )
        bunch = getattr(sd, f"load_{name}")(as_frame=True)
        return bunch.frame, "target"
    if source.startswith("synthetic:"):
        name = source.split(":", 1)[1]
        if name not in SYNTHETIC_SETS:
            raise InvalidInput(
                f"data.source: unknown synthetic data set '{name}'; known: {', '.join(SYNTHETIC_SETS)}"
            )
        return smart_grid(spec.rows, spec.seed), "load_mw"
    if source == "sql":
        if not spec.url or not spec.query:
            raise InvalidInput("data: a 'sql' source needs 'url' (SQLAlchemy URL) and 'query'")
        from sqlalchemy import create_engine, text

        engine = create_engine(spec.url)
        try:
            with engine.connect() as conn:
                return pd.read_sql(text(spec.query), conn), None
        except Exception as exc:  # driver errors: bad table, bad SQL
            raise InvalidInput(f"data.query failed: {exc}") from None
        finally:
            engine.dispose()
    lowered = source.lower()
    try:
        if lowered.endswith((".parquet", ".pq")):
            return pd.read_parquet(source), None
        if lowered.endswith((".csv", ".csv.gz")):
            return pd.read_csv(source), None
    except FileNotFoundError:
        raise InvalidInput(f"data.source: {source} does not exist") from None
    except (ValueError, OSError) as exc:
        raise InvalidInput(f"data.source: cannot read {source}: {exc}") from None
    raise InvalidInput(
        f"data.source '{source}' is not sklearn:NAME, synthetic:NAME, sql, or a .csv/.parquet path or URL"
    )


def load_dataset(spec: DataSpec, task: str) -> Dataset:
    """Load and check the data: target present and of the right kind, features present, rows left."""
    frame, default_target = _read_frame(spec)
    target = spec.target or default_target
    if target is None:
        raise InvalidInput("data.target: name the target column (the source has no default target)")
    if frame.empty:
        raise InvalidInput(f"data.source {spec.source} has no rows")
    if target not in frame.columns:
        raise InvalidInput(
            f"data.target: column '{target}' is not in the data; columns: {', '.join(map(str, frame.columns))}"
        )
    features = spec.features or [str(c) for c in frame.columns if c != target]
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise InvalidInput(f"data.features: columns not in the data: {', '.join(missing)}")
    if target in features:
        raise InvalidInput(f"data.features: the target '{target}' cannot also be a feature")
    y = frame[target]
    if y.isna().any():
        raise InvalidInput(f"data.target: column '{target}' has {int(y.isna().sum())} missing values")
    if task == "regression" and not pd.api.types.is_numeric_dtype(y):
        raise InvalidInput(f"data.target: task is regression but '{target}' is not numeric ({y.dtype})")
    if task == "classification":
        numeric = pd.api.types.is_numeric_dtype(y)
        if numeric and (
            y.nunique() > MAX_CLASSES or (pd.api.types.is_float_dtype(y) and not np.all(np.mod(y, 1) == 0))
        ):
            raise InvalidInput(
                f"data.target: task is classification but '{target}' holds continuous values; "
                "use task: regression or a label column"
            )
        if y.nunique() < 2:
            raise InvalidInput(
                f"data.target: '{target}' has a single class; classification needs two or more"
            )
    return Dataset(x=frame[features].reset_index(drop=True), y=y.reset_index(drop=True), target=target)


def data_hash(ds: Dataset) -> str:
    """sha256 over the rows (values and column names): the same data gives the same hash."""
    h = hashlib.sha256()
    h.update("\x00".join([*ds.feature_names, ds.target]).encode())
    h.update(pd.util.hash_pandas_object(ds.x, index=False).to_numpy().tobytes())
    h.update(pd.util.hash_pandas_object(ds.y, index=False).to_numpy().tobytes())
    return h.hexdigest()


def reference_profile(x: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
    """Per-feature summary of the training data, kept in the version's ``lineage.reference_profile``
    for drift checks: numeric features get moments, quantiles and a histogram (edges + counts);
    others get category frequencies. ``background`` holds a few rows for SHAP explanations."""
    features: dict[str, Any] = {}
    for col in x.columns:
        s = x[col].dropna()
        if pd.api.types.is_numeric_dtype(s) and len(s):
            values = s.to_numpy(dtype=float)
            counts, edges = np.histogram(values, bins=PROFILE_BINS)
            features[str(col)] = {
                "kind": "numeric",
                "count": int(values.size),
                "missing": int(x[col].isna().sum()),
                "mean": float(values.mean()),
                "std": float(values.std()),
                "min": float(values.min()),
                "max": float(values.max()),
                "quantiles": {str(q): float(np.quantile(values, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)},
                "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
            }
        else:
            freq = s.astype(str).value_counts(normalize=True).head(50)
            features[str(col)] = {
                "kind": "categorical",
                "count": int(s.size),
                "missing": int(x[col].isna().sum()),
                "frequencies": {str(k): float(v) for k, v in freq.items()},
            }
    sample = x.sample(n=min(BACKGROUND_ROWS, len(x)), random_state=seed)
    numeric = sample.select_dtypes("number")
    return {
        "rows": len(x),
        "features": features,
        "background": numeric.to_numpy(dtype=float).tolist() if numeric.shape[1] == x.shape[1] else [],
    }
