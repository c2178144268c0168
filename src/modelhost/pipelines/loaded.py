"""A registered version loaded for offline work (optimize, explain, fairness, batch scoring):
its runtime, plus the training/held-out split rebuilt from the version's lineage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modelhost.errors import InvalidInput
from modelhost.pipelines.data import Dataset, load_dataset
from modelhost.pipelines.spec import DataSpec
from modelhost.registry import Registry, VersionInfo
from modelhost.runtimes import Runtime, runtime_by_name

# Output names per runtime: skl2onnx names them label/probabilities, the others predict/predict_proba.
_LABEL_NAMES = ("predict", "label")
_PROBA_NAMES = ("predict_proba", "probabilities")


@dataclass
class Split:
    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]
    task: str
    dataset: Dataset


class LoadedVersion:
    """A version's runtime, loaded in this process, with numpy-in/numpy-out helpers."""

    def __init__(self, registry: Registry, ref: str, version: int | None = None) -> None:
        self.registry = registry
        self.info: VersionInfo = registry.resolve(ref, version)
        self.ref = f"{self.info.model}/versions/{self.info.version}"
        path = registry.artifact_path(self.info)
        self.runtime: Runtime = runtime_by_name(self.info.runtime)(
            path, self.info.signature, registry.settings
        )
        self.runtime.load()
        self.input = self.info.signature.inputs[0]
        outputs = [o.name for o in self.info.signature.outputs]
        self.label_out = next((n for n in _LABEL_NAMES if n in outputs), None)
        self.proba_out = next((n for n in _PROBA_NAMES if n in outputs), None)
        if self.label_out is None and len(outputs) == 1:
            self.label_out = outputs[0]

    @property
    def is_classifier(self) -> bool:
        return self.proba_out is not None

    def _cast(self, x: np.ndarray) -> np.ndarray:
        dtype = {"FP32": np.float32, "FP64": np.float64}.get(self.input.datatype, np.float64)
        return np.asarray(x, dtype=dtype)

    def predict(self, x: np.ndarray) -> np.ndarray:
        assert self.label_out is not None
        return np.asarray(
            self.runtime.predict({self.input.name: self._cast(x)}, [self.label_out])[self.label_out]
        )

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self.proba_out is None:
            raise InvalidInput(f"{self.ref} gives no class probabilities")
        return np.asarray(
            self.runtime.predict({self.input.name: self._cast(x)}, [self.proba_out])[self.proba_out]
        )

    def close(self) -> None:
        self.runtime.unload()

    def split(self) -> Split:
        """Rebuild the train/held-out split recorded at training time."""
        from sklearn.model_selection import train_test_split

        lineage = self.info.lineage
        if "data_spec" not in lineage or "split" not in lineage:
            raise InvalidInput(
                f"{self.ref} was not trained by a modelhost pipeline: its lineage has no data_spec/split "
                "to rebuild the held-out set from"
            )
        sp: dict[str, Any] = lineage["split"]
        ds = load_dataset(DataSpec.model_validate(lineage["data_spec"]), sp["task"])
        x, y = ds.x.to_numpy(), ds.y.to_numpy()
        if all(np.issubdtype(t, np.number) for t in ds.x.dtypes):
            x = x.astype(float)
        x_tr, x_te, y_tr, y_te = train_test_split(
            x,
            y,
            test_size=sp["test_size"],
            random_state=sp["seed"],
            stratify=y if sp.get("stratified") else None,
        )
        return Split(x_tr, x_te, y_tr, y_te, ds.feature_names, sp["task"], ds)
