"""PySpark helper: score a Spark DataFrame with a registered model through a pandas UDF.

Each executor process loads the version once (from the same registry settings) and scores Arrow
batches; only the version reference and the settings travel to the executors, not the model.
Requires the ``spark`` extra (pyspark and a Java runtime).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd  # module level: pyspark resolves the UDF's type hints from module globals

from modelhost.config import Settings

_CACHE: dict[tuple[str, str], Any] = {}


def _loaded(settings_json: str, ref: str) -> Any:
    key = (settings_json, ref)
    if key not in _CACHE:
        from modelhost.pipelines.loaded import LoadedVersion
        from modelhost.registry import Registry

        _CACHE[key] = LoadedVersion(Registry(Settings.model_validate_json(settings_json)), ref)
    return _CACHE[key]


def predict_udf(ref: str, settings: Settings | None = None, *, result_type: str = "double") -> Any:
    """A pandas UDF taking the feature columns (in training order) and returning the prediction:
    ``df.withColumn("pred", predict_udf("iris@production")(*feature_columns))``."""
    from pyspark.sql.functions import pandas_udf, struct

    settings_json = (settings or Settings()).model_dump_json()

    # Spark's pandas UDFs take a fixed number of arguments; the columns travel as one struct,
    # which arrives as a DataFrame with the columns in order.
    @pandas_udf(result_type)  # type: ignore[call-overload, unused-ignore]  # typed only with pyspark
    def _predict(features: pd.DataFrame) -> pd.Series:
        loaded = _loaded(settings_json, ref)
        y = np.asarray(loaded.predict(features.to_numpy(dtype=float)))
        return pd.Series(y.astype(float) if result_type == "double" else y)

    def apply(*columns: Any) -> Any:
        return _predict(struct(*columns))

    return apply
