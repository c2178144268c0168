from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris

from modelhost.errors import InvalidInput
from modelhost.pipelines.batch import score_file
from modelhost.pipelines.loaded import LoadedVersion
from modelhost.pipelines.run import run_pipeline
from modelhost.pipelines.spec import parse_spec
from modelhost.registry import Registry
from tests.pipelines.conftest import spec_dict


@pytest.fixture
def loaded(registry: Registry) -> LoadedVersion:
    run_pipeline(parse_spec(spec_dict(search={"trials": 1})), registry, show_progress=False)
    return LoadedVersion(registry, "iris-t")


@pytest.mark.parametrize(("src_ext", "dst_ext"), [("csv", "parquet"), ("parquet", "csv")])
def test_chunks_match_one_shot_prediction(
    loaded: LoadedVersion, tmp_path: Path, src_ext: str, dst_ext: str
) -> None:
    frame = load_iris(as_frame=True).frame.drop(columns="target")
    frame["id"] = np.arange(len(frame))
    src = tmp_path / f"in.{src_ext}"
    frame.to_csv(src, index=False) if src_ext == "csv" else frame.to_parquet(src)
    seen: list[int] = []
    stats = score_file(
        loaded,
        str(src),
        str(tmp_path / f"out.{dst_ext}"),
        chunk_rows=40,
        keep=["id"],
        progress=lambda d, t: seen.append(d),
    )
    assert stats.rows == 150 and stats.chunks == 4 and seen == [40, 80, 120, 150]
    out = pd.read_csv(stats.output) if dst_ext == "csv" else pd.read_parquet(stats.output)
    x = frame.drop(columns="id").to_numpy(dtype=float)
    assert out["id"].tolist() == list(range(150))
    assert out["prediction"].tolist() == loaded.predict(x).tolist()
    assert out[["proba_0", "proba_1", "proba_2"]].to_numpy() == pytest.approx(loaded.predict_proba(x))


def test_missing_columns_named(loaded: LoadedVersion, tmp_path: Path) -> None:
    pd.DataFrame({"sepal length (cm)": [1.0]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InvalidInput, match="lacks columns the model needs: sepal width"):
        score_file(loaded, str(tmp_path / "bad.csv"), str(tmp_path / "o.csv"))
    with pytest.raises(InvalidInput, match=r"\.csv or \.parquet"):
        score_file(loaded, str(tmp_path / "bad.json"), str(tmp_path / "o.csv"))
