"""The PyTorch (safetensors + registered architecture) and Keras (.keras, safe_mode) runtimes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelhost.config import Settings
from modelhost.errors import UnsafeArtifact, UnsupportedFormat
from modelhost.registry.formats import KERAS, SAFETENSORS, detect_format
from modelhost.runtimes import runtime_for_format, torch_arch


def _mlp(
    tmp_path: Path, output: str = "softmax", classes: tuple = (0, 1, 2)
) -> tuple[Path, torch_arch.ArchSpec]:  # type: ignore[type-arg]
    spec = torch_arch.ArchSpec(
        "mlp", 4, 1 if output == "sigmoid" else len(classes) or 1, (5,), output=output, classes=classes
    )
    module = torch_arch.build(spec)
    return torch_arch.save(module, spec, tmp_path / "m.safetensors"), spec


def test_torch_runtime_predicts_like_the_module(tmp_path: Path, settings: Settings) -> None:
    import torch

    path, _ = _mlp(tmp_path, classes=("a", "b", "c"))
    assert detect_format(path) == SAFETENSORS
    cls = runtime_for_format(SAFETENSORS)
    sig = cls.inspect(path, settings)
    assert [o.name for o in sig.outputs] == ["predict", "predict_proba"] and sig.extra["classes"] == [
        "a",
        "b",
        "c",
    ]
    rt = cls(path, sig, settings)
    rt.load()
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    out = rt.predict({"input": x}, ["predict", "predict_proba"])
    module, _ = torch_arch.load(path)
    expected = torch.softmax(module(torch.from_numpy(x)), dim=1).detach().numpy()
    assert out["predict_proba"] == pytest.approx(expected, abs=1e-6)
    assert list(out["predict"]) == [("a", "b", "c")[i] for i in expected.argmax(axis=1)]


def test_torch_refuses_unknown_arch_and_missing_spec(tmp_path: Path, settings: Settings) -> None:
    import torch
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(UnsupportedFormat, match=r"no 'modelhost.arch' metadata"):
        runtime_for_format(SAFETENSORS).inspect(plain, settings)
    odd = tmp_path / "odd.safetensors"
    save_file(
        {"w": torch.zeros(2)},
        str(odd),
        metadata={"modelhost.arch": json.dumps({"name": "os.system", "in_features": 1, "out_features": 1})},
    )
    with pytest.raises(UnsupportedFormat, match=r"'os.system' is not registered"):
        runtime_for_format(SAFETENSORS).inspect(odd, settings)
    wrong = tmp_path / "wrong.safetensors"
    spec = torch_arch.ArchSpec("mlp", 3, 2, (4,), output="softmax")
    save_file({"0.weight": torch.zeros(4, 3)}, str(wrong), metadata={"modelhost.arch": spec.to_json()})
    with pytest.raises(UnsupportedFormat, match="do not fit architecture"):
        runtime_for_format(SAFETENSORS).inspect(wrong, settings)


def test_torch_pickle_is_refused(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(UnsafeArtifact):
        detect_format(path)


def test_keras_runtime_and_safe_mode(tmp_path: Path, settings: Settings) -> None:
    from modelhost.runtimes.keras import import_keras

    keras = import_keras()
    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(4, activation="softmax")])
    path = tmp_path / "m.keras"
    model.save(path)
    assert detect_format(path) == KERAS
    cls = runtime_for_format(KERAS)
    sig = cls.inspect(path, settings)
    rt = cls(path, sig, settings)
    rt.load()
    x = np.ones((2, 3), dtype=np.float32)
    out = rt.predict({"input": x}, ["predict", "predict_proba"])
    assert out["predict_proba"] == pytest.approx(np.asarray(model.predict_on_batch(x)), abs=1e-6)
    assert out["predict"].tolist() == out["predict_proba"].argmax(axis=1).tolist()
    lam = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Lambda(lambda t: t * 2)])
    bad = tmp_path / "lambda.keras"
    lam.save(bad)
    with pytest.raises(UnsafeArtifact, match="unsafe deserialisation"):
        cls.inspect(bad, settings)


def test_torch_runtime_pins_only_its_own_thread_to_one(tmp_path: Path, settings: Settings) -> None:
    """Loading a torch MLP must not drop an LLM or embedding model in the same process to one core."""
    import threading

    import torch

    path, _ = _mlp(tmp_path)
    cls = runtime_for_format(SAFETENSORS)
    rt = cls(path, cls.inspect(path, settings), settings)
    seen: dict[str, int] = {}

    def load_and_call() -> None:  # what the model's dedicated thread does (reloads included)
        rt.load()
        rt.load()
        rt.predict({"input": np.zeros((2, 4), dtype=np.float32)}, ["predict"])
        seen["model"] = torch.get_num_threads()

    def other() -> None:  # a thread started afterwards (an LLM scheduler, an embeddings call)
        seen["other"] = torch.get_num_threads()

    def default() -> None:  # the process-wide count, as a fresh thread adopts it
        seen["before"] = torch.get_num_threads()

    for target in (default, load_and_call, other):
        t = threading.Thread(target=target)
        t.start()
        t.join()
    assert cls.single_thread
    if seen["before"] == 1:
        pytest.skip("torch runs one thread on this machine: nothing to tell apart")
    assert seen["model"] == 1
    assert seen["other"] == seen["before"]
