"""What every framework's trainer provides, so search, evaluation and registration are shared."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Fitted(Protocol):
    """A trained model, before it is saved."""

    def predict(self, x: np.ndarray) -> np.ndarray: ...

    def predict_proba(self, x: np.ndarray) -> np.ndarray | None: ...

    def save(self, directory: Path) -> Path:
        """Write the artifact in the framework's safe format; returns its path."""
        ...


class Trainer(Protocol):
    """Fits one candidate type with concrete parameters."""

    def fit(self, kind: str, params: dict[str, Any], x: np.ndarray, y: np.ndarray) -> Fitted: ...

    def kinds(self) -> tuple[str, ...]: ...
