"""Worker processes: run a CPU-heavy runtime in N processes so Python's GIL does not cap throughput.

``WorkerPool.predict`` is blocking (called from a thread, like ``Runtime.predict``): it takes an idle
worker, sends it the batch over a pipe and waits for the answer. A worker that dies fails only the
request it was running (503, clear message) and is restarted; the others keep serving.
Tensors cross the pipe pickled: the channel is between our own processes, never from clients.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing as mp
import queue
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from modelhost import errors
from modelhost.config import Settings
from modelhost.errors import InvalidInput, ModelhostError, ModelNotReady
from modelhost.runtimes.base import Runtime, Signature

log = logging.getLogger(__name__)
_START_TIMEOUT_S = 120.0


def runtime_spec(cls: type[Runtime]) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_runtime(spec: str) -> type[Runtime]:
    module, _, name = spec.partition(":")
    cls: type[Runtime] = getattr(importlib.import_module(module), name)
    return cls


def _encode_error(exc: BaseException) -> tuple[str, str]:
    return type(exc).__name__, str(getattr(exc, "message", exc))


def _decode_error(name: str, message: str) -> Exception:
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, ModelhostError):
        return cls(message)
    if name in ("ValueError", "TypeError", "InvalidArgument", "Fail"):
        return InvalidInput(f"the model rejected the input: {message}")
    return RuntimeError(f"{name}: {message}")


def _worker_main(
    conn: Connection, spec: str, path: str, signature: dict[str, Any], settings: dict[str, Any]
) -> None:
    try:
        runtime = _import_runtime(spec)(Path(path), Signature.from_dict(signature), Settings(**settings))
        runtime.load()
    except BaseException as exc:
        conn.send((False, _encode_error(exc)))
        return
    conn.send((True, "ready"))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        inputs, outputs = message
        try:
            conn.send((True, runtime.predict(inputs, outputs)))
        except BaseException as exc:
            conn.send((False, _encode_error(exc)))


class _Worker:
    def __init__(self, index: int, process: mp.process.BaseProcess, conn: Connection) -> None:
        self.index = index
        self.process = process
        self.conn = conn


class WorkerPool(Runtime):
    """A Runtime whose predict() runs in one of ``workers`` child processes."""

    name = "worker-pool"

    def __init__(self, inner: type[Runtime] | str, path: Path, signature: Signature, settings: Settings,
                 workers: int) -> None:  # fmt: skip
        super().__init__(path, signature, settings)
        self.spec = inner if isinstance(inner, str) else runtime_spec(inner)
        self.size = max(1, workers)
        self.restarts = 0
        self._ctx = mp.get_context("spawn")
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def load(self) -> None:
        for i in range(self.size):
            worker = self._spawn(i)
            self._workers.append(worker)
            self._idle.put(worker)

    def _spawn(self, index: int) -> _Worker:
        parent, child = self._ctx.Pipe()
        settings = self.settings.model_dump(mode="json")
        process = self._ctx.Process(
            target=_worker_main,
            args=(child, self.spec, str(self.path), self.signature.to_dict(), settings),
            name=f"modelhost-worker-{index}",
            daemon=True,
        )
        process.start()
        child.close()
        if not parent.poll(_START_TIMEOUT_S):
            process.kill()
            raise ModelNotReady(f"worker process {index} did not start within {_START_TIMEOUT_S:.0f} s")
        try:
            ok, payload = parent.recv()
        except (EOFError, OSError):
            raise ModelNotReady(f"worker process {index} died while loading the model") from None
        if not ok:
            process.join(5)
            raise _decode_error(*payload)
        return _Worker(index, process, parent)

    def _restart(self, worker: _Worker) -> _Worker:
        with self._lock:
            self.restarts += 1
            with contextlib.suppress(OSError):
                worker.conn.close()
            if worker.process.is_alive():
                worker.process.kill()
            worker.process.join(5)
            log.warning("restarting worker %d (exit code %s)", worker.index, worker.process.exitcode)
            fresh = self._spawn(worker.index)
            self._workers[worker.index] = fresh
            return fresh

    def predict(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        if self._closed:
            raise ModelNotReady("the model's workers are shut down")
        worker = self._idle.get()
        try:
            if not worker.process.is_alive():  # died while idle: restart before using it
                worker = self._restart(worker)
            try:
                worker.conn.send((inputs, list(outputs)))
                ok, payload = worker.conn.recv()
            except (EOFError, OSError, BrokenPipeError):
                index = worker.index
                worker = self._restart(worker)
                raise ModelNotReady(
                    f"worker process {index} crashed while running this request; it was restarted, "
                    "retry the request"
                ) from None
        finally:
            if not self._closed:
                self._idle.put(worker)
        if not ok:
            raise _decode_error(*payload)
        result: dict[str, np.ndarray] = payload
        return result

    def pids(self) -> list[int | None]:
        return [w.process.pid for w in self._workers]

    def unload(self) -> None:
        self._closed = True
        for worker in self._workers:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        for worker in self._workers:
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.kill()
            worker.conn.close()
        self._workers.clear()
