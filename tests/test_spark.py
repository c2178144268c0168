"""The PySpark UDF helper against a local Spark session (skipped where pyspark is not installed)."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
from sklearn.datasets import load_iris

from modelhost.config import Settings
from modelhost.pipelines.loaded import LoadedVersion
from modelhost.pipelines.run import run_pipeline
from modelhost.pipelines.spec import parse_spec
from modelhost.registry import Registry
from tests.pipelines.conftest import spec_dict

pyspark = pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Spark needs a Java runtime", allow_module_level=True)


def test_predict_udf_matches_local_prediction(settings: Settings, registry: Registry, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Spark's Python workers must run this interpreter (the one with modelhost installed).
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from modelhost.spark import predict_udf

    run_pipeline(parse_spec(spec_dict(search={"trials": 1})), registry, show_progress=False)
    frame = load_iris(as_frame=True).frame.drop(columns="target")
    spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
    try:
        df = spark.createDataFrame(frame)
        scored = df.withColumn("pred", predict_udf("iris-t", settings)(*df.columns)).toPandas()
    finally:
        spark.stop()
    expected = LoadedVersion(registry, "iris-t").predict(frame.to_numpy(dtype=float))
    assert np.asarray(scored["pred"], dtype=float).tolist() == expected.astype(float).tolist()
