"""Prediction logging: a sample of requests and answers per model version, written in the background.

Rows go to the registry database in batches (one transaction a second at most), never on the request
path. A redaction function (from the gateway) can scrub payloads first.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

import anyio
import numpy as np

from modelhost.monitoring.metrics import Metrics
from modelhost.registry import Registry, VersionInfo
from modelhost.registry.monitoring import LoggedPrediction
from modelhost.registry.tables import utcnow

log = logging.getLogger(__name__)
MAX_ROWS_PER_REQUEST = 64
MAX_BUFFER = 10_000

Redactor = Callable[[dict[str, Any]], dict[str, Any]]


def _jsonable(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, array in arrays.items():
        head = array[:MAX_ROWS_PER_REQUEST] if array.ndim else array
        if head.dtype.kind in "OSU":
            out[name] = [
                x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in head.reshape(-1)
            ]
        else:
            out[name] = head.tolist()
    return out


class PredictionLogger:
    def __init__(self, registry: Registry, sample_rate: float, metrics: Metrics,
                 redact: Redactor | None = None, flush_interval_s: float = 1.0) -> None:  # fmt: skip
        self.registry = registry
        self.sample_rate = sample_rate
        self.metrics = metrics
        self.redact = redact
        self.flush_interval_s = flush_interval_s
        self._buffer: list[LoggedPrediction] = []
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def maybe_log(self, info: VersionInfo, request_id: str | None, inputs: dict[str, np.ndarray],
                  outputs: dict[str, np.ndarray]) -> None:  # fmt: skip
        if self.sample_rate <= 0 or random.random() >= self.sample_rate:
            return
        if len(self._buffer) >= MAX_BUFFER:
            self.dropped += 1
            return
        payload_in, payload_out = _jsonable(inputs), _jsonable(outputs)
        if self.redact is not None:
            payload_in, payload_out = self.redact(payload_in), self.redact(payload_out)
        self._buffer.append(
            LoggedPrediction(info.model, info.version, utcnow(), request_id, payload_in, payload_out)
        )
        self.metrics.predictions_logged.labels(info.model, str(info.version)).inc()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_interval_s)
        await self.flush()

    async def flush(self) -> None:
        entries, self._buffer = self._buffer, []
        if not entries:
            return
        try:
            await anyio.to_thread.run_sync(self.registry.log_predictions, entries)
        except Exception:  # a logging failure must never fail serving; it is reported, not raised
            log.exception("could not write %d prediction log rows", len(entries))

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        await self.flush()
