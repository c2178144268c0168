"""Keras 3 trainer (torch backend): Normalization → Dense layers → head, early stopping, ``.keras`` file.

Only built-in layers are used, so the saved file loads with ``safe_mode=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelhost.pipelines.torch import _check_params, standardise
from modelhost.runtimes.keras import import_keras


class KerasFitted:
    def __init__(self, model: Any, classes: list[Any], output: str) -> None:
        self.model, self.classes, self.output = model, classes, output

    def _proba(self, x: np.ndarray) -> np.ndarray:
        y = np.asarray(self.model.predict_on_batch(np.asarray(x, dtype=np.float32)), dtype=np.float32)
        return np.concatenate([1 - y, y], axis=1) if self.output == "sigmoid" else y

    def predict(self, x: np.ndarray) -> np.ndarray:
        if not self.classes:
            return np.asarray(self.model.predict_on_batch(np.asarray(x, dtype=np.float32))).reshape(-1)
        return np.asarray(self.classes)[self._proba(x).argmax(axis=1)]

    def predict_proba(self, x: np.ndarray) -> np.ndarray | None:
        return self._proba(x) if self.classes else None

    def save(self, directory: Path) -> Path:
        path = directory / "model.keras"
        self.model.save(path)
        return path


class KerasTrainer:
    def __init__(self, task: str, seed: int) -> None:
        self.task, self.seed = task, seed

    def kinds(self) -> tuple[str, ...]:
        return ("mlp",)

    def fit(self, kind: str, params: dict[str, Any], x: np.ndarray, y: np.ndarray) -> KerasFitted:
        keras = import_keras()
        p = _check_params(params)
        keras.utils.set_random_seed(self.seed)
        mean, std = standardise(x)
        layers: list[Any] = [
            keras.Input(shape=(x.shape[1],)),
            keras.layers.Normalization(mean=mean, variance=std**2),
        ]
        for width in p["hidden"]:
            layers.append(keras.layers.Dense(int(width), activation=p["activation"]))
            if float(p["dropout"]) > 0:
                layers.append(keras.layers.Dropout(float(p["dropout"])))
        classes: list[Any] = sorted(np.unique(y).tolist()) if self.task == "classification" else []
        if classes:
            output = p["output"] or "softmax"
            index = {c: i for i, c in enumerate(classes)}
            t = np.array([index[v] for v in y.tolist()])
            if output == "sigmoid":
                layers.append(keras.layers.Dense(1, activation="sigmoid"))
                loss = "binary_crossentropy"
            else:
                layers.append(keras.layers.Dense(len(classes), activation="softmax"))
                loss = "sparse_categorical_crossentropy"
        else:
            output = "linear"
            y_mean, y_std = float(np.mean(y)), float(np.std(y)) or 1.0
            # The target is learned standardised; a Rescaling layer maps it back, so served values are raw.
            layers += [keras.layers.Dense(1), keras.layers.Rescaling(scale=y_std, offset=y_mean)]
            t = np.asarray(y, dtype=np.float32)
            loss = "mse"
        model = keras.Sequential(layers)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=float(p["lr"])), loss=loss)
        stop = keras.callbacks.EarlyStopping(patience=int(p["patience"]), restore_best_weights=True)
        model.fit(
            x.astype(np.float32),
            t,
            epochs=int(p["epochs"]),
            batch_size=int(p["batch_size"]),
            validation_split=float(p["validation_fraction"]),
            callbacks=[stop],
            verbose=0,
        )
        return KerasFitted(model, classes, output)
