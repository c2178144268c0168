"""Hot swap, rollback, canary splits and deployment settings through the admin API, in-process."""

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modelhost.config import Settings
from modelhost.registry import Registry
from modelhost.serving.app import create_app

from ..conftest import make_admin_key

BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}


@pytest.fixture
def three_versions(registry: Registry, iris_skops: Path, regressor_skops: Path) -> Registry:
    for _ in range(3):
        registry.register_version("iris", iris_skops)
    registry.set_alias("iris", "production", 1)
    return registry


@pytest.fixture
def admin(settings: Settings, three_versions: Registry) -> Iterator[TestClient]:
    token = make_admin_key(three_versions, settings)
    app = create_app(settings, registry=three_versions)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def _version(c: TestClient, path: str = "/v2/models/iris@production/infer", **headers: str) -> str:
    r = c.post(path, json=BODY, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["x-modelhost-model-version"] == r.json()["model_version"]
    return str(r.json()["model_version"])


def test_alias_move_hot_swaps_with_zero_failed_requests(admin: TestClient) -> None:
    failures: list[str] = []
    seen: Counter[str] = Counter()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            r = admin.post("/v2/models/iris@production/infer", json=BODY)
            if r.status_code != 200:
                failures.append(r.text)
            else:
                seen[r.json()["model_version"]] += 1

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        for version in (2, 3, 1, 2):
            time.sleep(0.15)
            r = admin.put("/api/v1/models/iris/aliases/production", json={"version": version})
            assert r.status_code == 200, r.text
            assert _version(admin) == str(version)  # applied at once in this server
        time.sleep(0.15)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert set(seen) == {"1", "2", "3"}
    # versions no route serves any more were drained and unloaded
    time.sleep(0.2)
    ready = {e["version"] for e in admin.post("/v2/repository/index", json={"ready": True}).json()}
    assert ready == {"2"}


def test_rollback_walks_back_the_history(admin: TestClient) -> None:
    for v in (2, 3):
        admin.put("/api/v1/models/iris/aliases/production", json={"version": v})
    r = admin.post("/api/v1/models/iris/aliases/production/rollback", json={"reason": "bad metrics"})
    assert r.status_code == 200 and r.json()["version"] == 2
    assert _version(admin) == "2"
    assert admin.post("/api/v1/models/iris/aliases/production/rollback").json()["version"] == 1
    r = admin.post("/api/v1/models/iris/aliases/production/rollback")
    assert r.status_code == 404 and "no earlier version" in r.json()["error"]
    kinds = [h["kind"] for h in admin.get("/api/v1/models/iris/aliases/production/history").json()]
    assert kinds == ["set", "set", "set", "rollback", "rollback"]


def test_canary_split_ratio_and_stickiness(admin: TestClient) -> None:
    r = admin.put("/api/v1/models/iris/canaries/production", json={"version": 3, "percent": 25})
    assert r.status_code == 200 and r.json()["canaries"] == {"production": {"version": 3, "percent": 25.0}}
    counts = Counter(_version(admin) for _ in range(400))
    assert set(counts) == {"1", "3"}
    assert 60 <= counts["3"] <= 140, counts  # 25 % of 400 = 100; ±4 standard deviations ≈ ±35
    # plain name = production alias, so the split applies there too
    assert {_version(admin, "/v2/models/iris/infer") for _ in range(60)} == {"1", "3"}
    # a routing key always lands on the same side
    for key in ("user-1", "user-2", "user-3"):
        assert len({_version(admin, **{"x-modelhost-routing-key": key}) for _ in range(10)}) == 1
    # an exact version is never split
    assert {_version(admin, "/v2/models/iris/versions/1/infer") for _ in range(20)} == {"1"}
    assert admin.delete("/api/v1/models/iris/canaries/production").status_code == 200
    assert {_version(admin) for _ in range(30)} == {"1"}


def test_canary_and_deployment_bad_input(admin: TestClient) -> None:
    for body in ({"version": 9, "percent": 10}, {"version": 2, "percent": 101}, {"version": 2}, {"v": 1}):
        r = admin.put("/api/v1/models/iris/canaries/production", json=body)
        assert r.status_code in (400, 404) and "error" in r.json(), body
    for body in ({"max_batch_size": 0}, {"workers": -1}, {"max_wait_ms": "soon"}, {"batch": 3}):
        r = admin.patch("/api/v1/models/iris/deployment", json=body)
        assert r.status_code == 400 and "error" in r.json(), body
    assert admin.get("/api/v1/models/nope/deployment").status_code == 404


def test_deployment_batching_settings_apply_live(admin: TestClient) -> None:
    r = admin.patch("/api/v1/models/iris/deployment", json={"max_batch_size": 1})
    assert r.status_code == 200 and r.json()["max_batch_size"] == 1
    assert _version(admin) == "1"
    r = admin.patch("/api/v1/models/iris/deployment", json={"max_batch_size": 64, "max_wait_ms": 2})
    assert r.json() == {
        "model": "iris",
        "max_batch_size": 64,
        "max_wait_ms": 2.0,
        "workers": None,
        "canaries": {},
    }
    assert _version(admin) == "1"


def test_worker_processes_serve_and_recover(settings: Settings, three_versions: Registry) -> None:
    import os
    import signal

    three_versions.set_deployment("iris", workers=1)
    with TestClient(create_app(settings, registry=three_versions)) as c:
        assert _version(c) == "1"
        entry = c.app.state.plane.repository.get(("iris", 1))  # type: ignore[attr-defined]
        (pid,) = entry.runtime.pids()
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        assert _version(c) == "1"  # the dead idle worker is restarted before use
        assert entry.runtime.restarts == 1 and entry.runtime.pids() != [pid]


def test_memory_budget_evicts_least_recently_used(settings: Settings, three_versions: Registry) -> None:
    size = three_versions.get_version("iris", 1).size_bytes
    budget_mb = (2 * size + size // 2) / (1024 * 1024)  # room for two versions, not three
    s = settings.model_copy(update={"memory_budget_mb": budget_mb, "load_on_start": False})
    with TestClient(create_app(s, registry=three_versions)) as c:
        for v in ("1", "2", "3"):
            assert _version(c, f"/v2/models/iris/versions/{v}/infer") == v
        ready = {e["version"] for e in c.post("/v2/repository/index", json={"ready": True}).json()}
        assert ready == {"2", "3"}
        assert _version(c, "/v2/models/iris/versions/1/infer") == "1"  # lazily loaded again


def test_deployment_workers_change_rolls_the_pool_live(settings: Settings, three_versions: Registry) -> None:
    from modelhost.dataplane.workers import WorkerPool

    key = make_admin_key(three_versions, settings)
    with TestClient(create_app(settings, registry=three_versions)) as c:
        c.headers["Authorization"] = f"Bearer {key}"
        repo = c.app.state.plane.repository  # type: ignore[attr-defined]
        in_process = repo.get(("iris", 1)).runtime
        statuses: Counter[int] = Counter()
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                r = c.post("/v2/models/iris@production/infer", json=BODY)
                statuses[r.status_code] += 1

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.2)
            r = c.patch("/api/v1/models/iris/deployment", json={"workers": 1})
            assert r.status_code == 200 and r.json()["workers"] == 1
            pool = repo.get(("iris", 1)).runtime
            assert isinstance(pool, WorkerPool) and len(pool.pids()) == 1 and in_process.model is None
            served_during_roll = sum(statuses.values())
            time.sleep(0.2)
            r = c.patch("/api/v1/models/iris/deployment", json={"workers": 0})
            assert r.status_code == 200
            assert not isinstance(repo.get(("iris", 1)).runtime, WorkerPool)  # back in process
            assert not pool._workers  # the pool was drained and shut down
            time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert served_during_roll > 0 and sum(statuses.values()) > served_during_roll
    assert set(statuses) == {200}, statuses  # not one request failed while the runtime rolled


def test_deployment_changed_by_another_process_applies_after_the_resolve_cache(
    settings: Settings, three_versions: Registry
) -> None:
    """``modelhost deployments set`` writes the registry from another process; the server notices at the
    next route refresh (MODELHOST_RESOLVE_CACHE_S) and reconfigures the loaded version."""
    with TestClient(
        create_app(settings.model_copy(update={"resolve_cache_s": 0.05}), registry=three_versions)
    ) as c:
        repo = c.app.state.plane.repository  # type: ignore[attr-defined]
        assert _version(c) == "1" and repo.get(("iris", 1)).batcher is not None
        three_versions.set_deployment("iris", max_batch_size=1)  # as the CLI does, behind the server's back
        deadline = time.monotonic() + 10
        while repo.get(("iris", 1)).batcher is not None and time.monotonic() < deadline:
            time.sleep(0.06)
            assert _version(c) == "1"  # requests keep being answered meanwhile
        assert repo.get(("iris", 1)).batcher is None  # batching off now, without a restart
