"""Worker processes: results, GIL-free parallelism plumbing, crash isolation and restart."""

from pathlib import Path

import numpy as np
import pytest

from modelhost.config import Settings
from modelhost.dataplane.workers import WorkerPool
from modelhost.errors import InvalidInput, ModelNotReady
from modelhost.runtimes.base import Signature, TensorSpec

SIG = Signature(inputs=(TensorSpec("x", "FP64", (-1, 1)),), outputs=(TensorSpec("y", "FP64", (-1, 1)),))


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("w") / "none"
    path.write_text("unused")
    p = WorkerPool("tests.dataplane.crashy:CrashyRuntime", Path(path), SIG, Settings(), workers=2)
    p.load()
    yield p
    p.unload()


def test_workers_predict_in_other_processes(pool: WorkerPool) -> None:
    import os

    out = pool.predict({"x": np.array([[1.0], [2.0]])}, ["y", "pid"])
    assert out["y"].tolist() == [[2.0], [3.0]]
    assert int(out["pid"][0]) in pool.pids() and int(out["pid"][0]) != os.getpid()


def test_model_errors_come_back_as_client_errors(pool: WorkerPool) -> None:
    with pytest.raises(InvalidInput, match="negative input"):
        pool.predict({"x": np.array([[-1.0]])}, ["y"])


def test_crashed_worker_fails_its_request_and_is_restarted(pool: WorkerPool) -> None:
    before = set(pool.pids())
    with pytest.raises(ModelNotReady, match="crashed"):
        pool.predict({"x": np.array([[666.0]])}, ["y"])
    assert pool.restarts >= 1
    assert set(pool.pids()) != before
    for _ in range(4):  # both workers serve again
        assert pool.predict({"x": np.array([[1.0]])}, ["y"])["y"].tolist() == [[2.0]]


def test_load_failure_is_reported(tmp_path: Path) -> None:
    p = WorkerPool(
        "modelhost.runtimes.sklearn:SklearnRuntime", tmp_path / "missing.skops", SIG, Settings(), workers=1
    )
    with pytest.raises(Exception, match=r"missing|No such|not a readable"):
        p.load()
