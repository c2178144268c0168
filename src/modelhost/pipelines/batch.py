"""Batch scoring of a registered model over a large CSV or parquet file, chunk by chunk.

Rows are read ``chunk_rows`` at a time (pandas' chunked CSV reader, pyarrow's parquet batch
iterator), scored, and appended to the output, so memory stays flat whatever the file size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelhost.errors import InvalidInput
from modelhost.pipelines.loaded import LoadedVersion


@dataclass
class BatchStats:
    rows: int
    chunks: int
    output: str


def _chunks(path: str, chunk_rows: int) -> tuple[Iterator[pd.DataFrame], int | None]:
    lowered = path.lower()
    if lowered.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read {path}: {exc}") from None
        return (b.to_pandas() for b in pf.iter_batches(batch_size=chunk_rows)), pf.metadata.num_rows
    if lowered.endswith((".csv", ".csv.gz")):
        if not Path(path).exists() and "://" not in path:
            raise InvalidInput(f"{path} does not exist")
        return iter(pd.read_csv(path, chunksize=chunk_rows)), None
    raise InvalidInput(f"{path}: batch scoring reads .csv or .parquet files")


class _Writer:
    def __init__(self, path: str) -> None:
        self.path, self.parquet = path, path.lower().endswith((".parquet", ".pq"))
        self._pq: Any = None
        if not self.parquet and not path.lower().endswith(".csv"):
            raise InvalidInput(f"{path}: batch scoring writes .csv or .parquet files")
        self.first = True

    def write(self, frame: pd.DataFrame) -> None:
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._pq is None:
                self._pq = pq.ParquetWriter(self.path, table.schema)
            self._pq.write_table(table)
        else:
            frame.to_csv(self.path, mode="w" if self.first else "a", header=self.first, index=False)
        self.first = False

    def close(self) -> None:
        if self._pq is not None:
            self._pq.close()


def score_file(
    loaded: LoadedVersion,
    src: str,
    dst: str,
    *,
    chunk_rows: int = 50_000,
    keep: list[str] | None = None,
    progress: Any = None,
) -> BatchStats:
    """Score every row of ``src`` into ``dst`` (``prediction`` plus ``proba_<class>`` columns and
    the ``keep`` columns). ``progress(rows_done, total_or_None)`` is called after each chunk."""
    if chunk_rows < 1:
        raise InvalidInput("--chunk-rows must be positive")
    features = loaded.info.lineage.get("feature_names") or loaded.info.signature.extra.get("feature_names")
    chunks, total = _chunks(src, chunk_rows)
    writer = _Writer(dst)
    rows = n = 0
    classes = loaded.info.signature.extra.get("classes")
    try:
        for frame in chunks:
            cols = features or [c for c in frame.columns if c not in (keep or [])]
            missing = [c for c in [*cols, *(keep or [])] if c not in frame.columns]
            if missing:
                raise InvalidInput(f"{src} lacks columns the model needs: {', '.join(map(str, missing))}")
            x = frame[cols].to_numpy(dtype=float)
            out = frame[keep].copy() if keep else pd.DataFrame(index=frame.index)
            out["prediction"] = loaded.predict(x)
            if loaded.is_classifier:
                proba = loaded.predict_proba(x)
                names = classes if classes and len(classes) == proba.shape[1] else range(proba.shape[1])
                for j, c in enumerate(names):
                    out[f"proba_{c}"] = np.asarray(proba[:, j], dtype=float)
            writer.write(out)
            rows += len(frame)
            n += 1
            if progress is not None:
                progress(rows, total)
    finally:
        writer.close()
    return BatchStats(rows, n, dst)
