from pathlib import Path

import numpy as np
import pytest

from modelhost.config import Settings
from modelhost.errors import UnsupportedFormat
from modelhost.optimize.onnx_export import sklearn_to_onnx
from modelhost.runtimes import runtime_by_name, runtime_for_format
from modelhost.runtimes.onnx import OnnxRuntime
from modelhost.runtimes.sklearn import SklearnRuntime


def test_sklearn_runtime_matches_the_model(iris_skops: Path, iris_model, iris_xy) -> None:  # type: ignore[no-untyped-def]
    settings = Settings()
    sig = SklearnRuntime.inspect(iris_skops, settings)
    rt = SklearnRuntime(iris_skops, sig, settings)
    rt.load()
    x = iris_xy[0][:10]
    out = rt.predict({"input": x}, ["predict", "predict_proba"])
    np.testing.assert_array_equal(out["predict"], iris_model.predict(x))
    np.testing.assert_allclose(out["predict_proba"], iris_model.predict_proba(x))
    assert set(rt.predict({"input": x}, ["predict"])) == {"predict"}
    rt.unload()


def test_sklearn_regressor_signature(regressor_skops: Path) -> None:
    sig = SklearnRuntime.inspect(regressor_skops, Settings())
    assert [s.name for s in sig.outputs] == ["predict"]
    assert sig.outputs[0].datatype == "FP64"
    assert sig.inputs[0].shape == (-1, 3)


def test_string_labels_are_bytes(tmp_path: Path, iris_xy) -> None:  # type: ignore[no-untyped-def]
    import skops.io as sio
    from sklearn.tree import DecisionTreeClassifier

    x, y = iris_xy
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    path = tmp_path / "named.skops"
    sio.dump(DecisionTreeClassifier(random_state=0).fit(x, names), path)
    sig = SklearnRuntime.inspect(path, Settings())
    assert sig.output("predict").datatype == "BYTES"  # type: ignore[union-attr]
    rt = SklearnRuntime(path, sig, Settings())
    rt.load()
    assert rt.predict({"input": x[:1]}, ["predict"])["predict"].tolist() == ["setosa"]


def test_onnx_runtime_agrees_with_sklearn(tmp_path: Path, iris_model, iris_xy) -> None:  # type: ignore[no-untyped-def]
    path = sklearn_to_onnx(iris_model, tmp_path / "iris.onnx")
    sig = OnnxRuntime.inspect(path, Settings())
    assert [s.name for s in sig.outputs] == ["label", "probabilities"]
    rt = OnnxRuntime(path, sig, Settings())
    rt.load()
    x = iris_xy[0].astype(np.float32)
    out = rt.predict({"input": x}, ["label", "probabilities"])
    assert (out["label"] == iris_model.predict(x)).mean() > 0.99
    np.testing.assert_allclose(out["probabilities"], iris_model.predict_proba(x), atol=1e-4)


def test_runtime_lookup_errors() -> None:
    assert runtime_for_format("skops") is SklearnRuntime
    assert runtime_by_name("onnx") is OnnxRuntime
    assert runtime_for_format("gguf").name == "llm"
    assert runtime_for_format("keras").name == "keras"
    with pytest.raises(UnsupportedFormat, match="no runtime"):
        runtime_for_format("pmml")
    with pytest.raises(UnsupportedFormat, match="unknown runtime"):
        runtime_by_name("tensorflow")
