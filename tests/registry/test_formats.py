import os
import pickle
import zipfile
from pathlib import Path

import joblib
import pytest
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer

from modelhost.errors import UnsafeArtifact, UnsupportedFormat
from modelhost.registry.formats import ONNX, SKOPS, detect_format, skops_trusted_types


def test_skops_detected_from_content_even_with_a_misleading_name(iris_skops: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(iris_skops.read_bytes())
    assert detect_format(iris_skops) == SKOPS
    assert detect_format(renamed) == SKOPS


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_pickle_is_refused_whatever_the_name(tmp_path: Path, iris_model, protocol: int) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "model.skops"  # a pickle pretending to be skops
    path.write_bytes(pickle.dumps(iris_model, protocol=protocol))
    with pytest.raises(UnsafeArtifact, match="pickle") as exc:
        detect_format(path)
    assert "skops" in exc.value.message and "ONNX" in exc.value.message


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3)])
def test_joblib_is_refused(tmp_path: Path, iris_model, compress) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "model.joblib"
    joblib.dump(iris_model, path, compress=compress)
    with pytest.raises(UnsafeArtifact, match="skops"):
        detect_format(path)


def test_zip_of_pickles_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": 1}))
    with pytest.raises(UnsafeArtifact, match="pickles"):
        detect_format(path)


def test_pickle_suffix_is_refused_even_when_content_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    path.write_bytes(b"\x00\x01\x02 not really anything")
    with pytest.raises(UnsafeArtifact):
        detect_format(path)


@pytest.mark.parametrize("content", [b"", b"hello world, not a model", b"\x00" * 64])
def test_unknown_content_is_unsupported(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "thing.dat"
    path.write_bytes(content)
    with pytest.raises(UnsupportedFormat):
        detect_format(path)


def test_missing_path_and_directory_are_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormat, match="does not exist"):
        detect_format(tmp_path / "nope.onnx")
    with pytest.raises(UnsupportedFormat, match="directory"):
        detect_format(tmp_path)


def test_onnx_is_detected(tmp_path: Path, iris_model) -> None:  # type: ignore[no-untyped-def]
    from modelhost.optimize.onnx_export import sklearn_to_onnx

    path = sklearn_to_onnx(iris_model, tmp_path / "m.model")
    assert detect_format(path) == ONNX


def test_skops_with_untrusted_function_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.skops"
    sio.dump(FunctionTransformer(func=os.system), path)
    with pytest.raises(UnsafeArtifact, match="system"):
        skops_trusted_types(path)


def test_skops_numpy_file_access_functions_are_refused(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "np_load.skops"
    sio.dump(FunctionTransformer(func=np.load), path)
    with pytest.raises(UnsafeArtifact, match="numpy"):
        skops_trusted_types(path)


def test_operator_can_trust_extra_types(tmp_path: Path) -> None:
    import math

    path = tmp_path / "fn.skops"
    sio.dump(FunctionTransformer(func=math.sqrt), path)
    with pytest.raises(UnsafeArtifact):
        skops_trusted_types(path)
    untrusted = sio.get_untrusted_types(file=str(path))
    assert skops_trusted_types(path, untrusted) == untrusted


def test_plain_sklearn_pipeline_is_trusted(iris_skops: Path) -> None:
    trusted = skops_trusted_types(iris_skops)
    assert all(t.split(".")[0] in ("numpy", "scipy", "sklearn") for t in trusted)


def test_engine_directories_are_detected_and_pickles_inside_refused(tmp_path: Path) -> None:
    import pickle

    from modelhost.registry.formats import BERGAMOT, CTRANSLATE2

    ct2 = tmp_path / "ct2"
    ct2.mkdir()
    (ct2 / "config.json").write_text("{}")
    (ct2 / "vocabulary.txt").write_text("a\nb\n")
    (ct2 / "model.bin").write_bytes(b"\x06\x00\x00\x00\x0c\x00WhisperSpec" + b"\x00" * 32)
    assert detect_format(ct2) == CTRANSLATE2
    (ct2 / "model.bin").write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    with pytest.raises(UnsafeArtifact, match="pickle"):
        detect_format(ct2)

    berg = tmp_path / "bergamot"
    enpt = berg / "enpt"
    enpt.mkdir(parents=True)
    (enpt / "model_info.json").write_text('{"src": "English", "trg": "Portuguese"}')
    (enpt / "vocab.enpt.spm").write_bytes(b"spm")
    (enpt / "model.enpt.intgemm.alphas.bin").write_bytes(b"\x01\x02binary weights")
    assert detect_format(berg) == BERGAMOT
    (enpt / "lex.bin").write_bytes(pickle.dumps([1]))
    with pytest.raises(UnsafeArtifact):
        detect_format(berg)
