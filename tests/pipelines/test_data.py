from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelhost.errors import InvalidInput
from modelhost.pipelines.data import data_hash, load_dataset, reference_profile, smart_grid
from modelhost.pipelines.spec import DataSpec


def test_csv_and_parquet_sources(tmp_path) -> None:  # type: ignore[no-untyped-def]
    frame = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [0.5, 0.1, 0.2, 0.3], "y": [0, 1, 0, 1]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    a = load_dataset(DataSpec(source=str(tmp_path / "d.csv"), target="y"), "classification")
    b = load_dataset(DataSpec(source=str(tmp_path / "d.parquet"), target="y"), "classification")
    assert a.feature_names == ["a", "b"] and data_hash(a) == data_hash(b)
    changed = load_dataset(
        DataSpec(source=str(tmp_path / "d.csv"), target="y", features=["a"]), "classification"
    )
    assert data_hash(changed) != data_hash(a)


def test_sql_source(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    db = tmp_path / "d.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table t (x real, label int)")
        conn.executemany("insert into t values (?, ?)", [(i / 10, i % 2) for i in range(20)])
    ds = load_dataset(
        DataSpec(source="sql", url=f"sqlite:///{db}", query="select * from t", target="label"),
        "classification",
    )
    assert ds.x.shape == (20, 1)
    with pytest.raises(InvalidInput, match=r"data.query failed"):
        load_dataset(
            DataSpec(source="sql", url=f"sqlite:///{db}", query="select * from nope", target="label"),
            "classification",
        )


@pytest.mark.parametrize(
    ("spec", "task", "message"),
    [
        (
            DataSpec(source="sklearn:iris", target="species"),
            "classification",
            "column 'species' is not in the data",
        ),
        (
            DataSpec(source="sklearn:iris", features=["petal"]),
            "classification",
            "columns not in the data: petal",
        ),
        (DataSpec(source="sklearn:diabetes"), "classification", "continuous values"),
        (DataSpec(source="sklearn:nope"), "classification", "unknown scikit-learn data set"),
        (DataSpec(source="/no/such.csv", target="y"), "classification", "does not exist"),
        (DataSpec(source="data.xlsx"), "classification", "is not sklearn:NAME"),
    ],
)
def test_bad_data_is_named(spec: DataSpec, task: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        load_dataset(spec, task)


def test_empty_and_text_target(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "e.csv").write_text("a,y\n")
    with pytest.raises(InvalidInput, match="no rows"):
        load_dataset(DataSpec(source=str(tmp_path / "e.csv"), target="y"), "classification")
    pd.DataFrame({"a": [1, 2], "y": ["x", "z"]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(InvalidInput, match="not numeric"):
        load_dataset(DataSpec(source=str(tmp_path / "t.csv"), target="y"), "regression")


def test_smart_grid_and_profile() -> None:
    frame = smart_grid(500, seed=1)
    assert len(frame) == 500 and not frame.isna().any().any()
    # load follows temperature away from 18 °C and the daily cycle: lag features carry signal
    assert np.corrcoef(frame["load_mw"], frame["load_lag_1h"])[0, 1] > 0.5
    profile = reference_profile(frame.drop(columns="load_mw"))
    temp = profile["features"]["temperature_c"]
    assert temp["kind"] == "numeric" and sum(temp["histogram"]["counts"]) == 500
    assert temp["min"] <= temp["quantiles"]["0.5"] <= temp["max"]
    assert len(profile["background"]) == 20 and len(profile["background"][0]) == 5
