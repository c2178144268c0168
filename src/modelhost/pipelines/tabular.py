"""scikit-learn trainer: preprocessing (imputation, scaling, encoding) + one estimator, saved with skops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelhost.errors import InvalidInput
from modelhost.pipelines.spec import PreprocessSpec


def _estimators(task: str) -> dict[str, Any]:
    from sklearn import calibration, ensemble, linear_model, neighbors, neural_network, svm

    if task == "classification":
        return {
            "logistic_regression": lambda **p: linear_model.LogisticRegression(**{"max_iter": 2000, **p}),
            "random_forest": ensemble.RandomForestClassifier,
            "gradient_boosting": ensemble.GradientBoostingClassifier,
            # Probabilities by calibration (SVC(probability=True) is deprecated in scikit-learn 1.9).
            "svc": lambda **p: calibration.CalibratedClassifierCV(svm.SVC(**p), ensemble=False),
            "knn": neighbors.KNeighborsClassifier,
            "mlp": lambda **p: neural_network.MLPClassifier(**{"max_iter": 500, **p}),
        }
    return {
        "linear_regression": linear_model.LinearRegression,
        "ridge": linear_model.Ridge,
        "random_forest": ensemble.RandomForestRegressor,
        "gradient_boosting": ensemble.GradientBoostingRegressor,
        "knn": neighbors.KNeighborsRegressor,
        "mlp": lambda **p: neural_network.MLPRegressor(**{"max_iter": 1000, **p}),
    }


def preprocessor(prep: PreprocessSpec, numeric: list[int], categorical: list[int]) -> Any:
    """A ColumnTransformer over column positions (served models receive plain tensors, not frames)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

    num_steps: list[Any] = []
    if prep.impute != "none":
        num_steps.append(SimpleImputer(strategy=prep.impute))
    if prep.scale == "standard":
        num_steps.append(StandardScaler())
    elif prep.scale == "minmax":
        num_steps.append(MinMaxScaler())
    parts: list[tuple[str, Any, list[int]]] = []
    if numeric:
        parts.append(("numeric", make_pipeline(*num_steps) if num_steps else "passthrough", numeric))
    if categorical:
        encoder = (
            OneHotEncoder(handle_unknown="ignore")
            if prep.encode == "onehot"
            else OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        )
        parts.append(
            ("categorical", make_pipeline(SimpleImputer(strategy="most_frequent"), encoder), categorical)
        )
    return ColumnTransformer(parts)


class SklearnFitted:
    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(x))

    def predict_proba(self, x: np.ndarray) -> np.ndarray | None:
        return np.asarray(self.model.predict_proba(x)) if hasattr(self.model, "predict_proba") else None

    def save(self, directory: Path) -> Path:
        import skops.io as sio

        path = directory / "model.skops"
        sio.dump(self.model, path)
        return path


class SklearnTrainer:
    def __init__(
        self, task: str, prep: PreprocessSpec, numeric: list[int], categorical: list[int], seed: int
    ) -> None:
        self.task, self.prep, self.numeric, self.categorical, self.seed = (
            task,
            prep,
            numeric,
            categorical,
            seed,
        )
        self.factories = _estimators(task)

    def kinds(self) -> tuple[str, ...]:
        return tuple(self.factories)

    def fit(self, kind: str, params: dict[str, Any], x: np.ndarray, y: np.ndarray) -> SklearnFitted:
        from sklearn.pipeline import Pipeline

        factory = self.factories[kind]
        params = dict(params)
        if "random_state" not in params and kind in ("random_forest", "gradient_boosting", "mlp", "svc"):
            params["random_state"] = self.seed
        try:
            estimator = factory(**params)
        except TypeError as exc:
            raise InvalidInput(f"candidates: bad parameter for {kind}: {exc}") from None
        model = Pipeline(
            [("preprocess", preprocessor(self.prep, self.numeric, self.categorical)), ("model", estimator)]
        )
        try:
            model.fit(x, y)
        except ValueError as exc:
            raise InvalidInput(f"candidates: {kind} cannot be fitted with these parameters: {exc}") from None
        return SklearnFitted(model)
