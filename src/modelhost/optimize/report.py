"""Before/after measurements of optimized versions: artifact size, latency, held-out quality."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelhost.pipelines.loaded import LoadedVersion


@dataclass
class Measurement:
    label: str
    ref: str
    format: str
    size_bytes: int
    latency_ms_p50: float  # one row per call
    batch_ms: float  # the whole held-out set in one call
    quality_name: str
    quality: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def measure(
    label: str, loaded: LoadedVersion, x: np.ndarray, y: np.ndarray, repeats: int = 200
) -> Measurement:
    """Median single-row latency over ``repeats`` calls, one full-batch call, accuracy or R²."""
    from sklearn.metrics import accuracy_score, r2_score

    loaded.predict(x[:1])  # warm-up (lazy init in runtimes)
    times = []
    for i in range(repeats):
        row = x[i % len(x) : i % len(x) + 1]
        t0 = time.perf_counter()
        loaded.predict(row)
        times.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    pred = loaded.predict(x)
    batch_ms = (time.perf_counter() - t0) * 1000
    if loaded.is_classifier:
        quality_name, quality = "accuracy", float(accuracy_score(y, pred))
    else:
        quality_name, quality = "r2", float(r2_score(y, np.asarray(pred, dtype=float).reshape(-1)))
    return Measurement(
        label,
        loaded.ref,
        loaded.info.format,
        loaded.info.size_bytes,
        statistics.median(times),
        batch_ms,
        quality_name,
        quality,
    )


def table(rows: list[Measurement]) -> Any:
    """A Rich table of the measurements, with ratios against the first row."""
    from rich.table import Table

    t = Table("step", "version", "format", "size", "size ×", "latency p50 (ms)", "batch (ms)", "quality")
    base = rows[0]
    for m in rows:
        t.add_row(
            m.label,
            "v" + m.ref.rsplit("/", 1)[-1],
            m.format,
            f"{m.size_bytes / 1024:.1f} KiB",
            f"{m.size_bytes / base.size_bytes:.2f}",
            f"{m.latency_ms_p50:.3f}",
            f"{m.batch_ms:.2f}",
            f"{m.quality_name}={m.quality:.4f}",
        )
    return t
