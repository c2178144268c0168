"""32 clients hammer iris@production on the real server while the alias moves 1 -> 2 -> 1 and a canary
split changes: no request may fail, and every answer comes from a version that was live then."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from modelhost.client import Client

from .conftest import Server

pytestmark = pytest.mark.e2e
BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


def test_swap_and_canary_under_load(server: Server, iris_skops: Path) -> None:
    admin = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.admin_key}"}, timeout=30
    )
    # a model of its own so other e2e tests do not interfere: two ONNX versions of iris
    with Client(server.url, api_key=server.admin_key) as sdk:
        assert sdk.register("swap", iris_skops, convert_onnx=True)["version"] == 1
        assert sdk.register("swap", iris_skops, convert_onnx=True)["version"] == 2
    admin.put("/api/v1/models/swap/aliases/production", json={"version": 2}).raise_for_status()

    failures: list[str] = []
    answers: list[tuple[float, float, str]] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    r = http.post("/v2/models/swap@production/infer", json=BODY)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                with lock:
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text}")
                    else:
                        answers.append((sent, time.monotonic(), r.json()["model_version"]))

    # what was live when: (from, until, versions); while a change is in flight, old and new may answer
    segments: list[tuple[float, float, set[str]]] = []
    live_since, live_now = 0.0, {"2"}
    threads = [threading.Thread(target=client) for _ in range(32)]
    for t in threads:
        t.start()
    try:
        steps = [
            ("alias", 1, {"1"}),
            ("canary", (2, 30), {"1", "2"}),
            ("canary", (2, 0), {"1"}),
            ("alias", 2, {"2"}),
        ]
        for kind, arg, now_live in steps:
            time.sleep(0.6)
            started = time.monotonic()
            if kind == "alias":
                r = admin.put("/api/v1/models/swap/aliases/production", json={"version": arg})
            else:
                version, percent = arg  # type: ignore[misc]
                r = admin.put(
                    "/api/v1/models/swap/canaries/production", json={"version": version, "percent": percent}
                )
            assert r.status_code == 200, r.text
            finished = time.monotonic()
            segments.append((live_since, started, live_now))
            segments.append((started, finished, live_now | now_live))
            live_since, live_now = finished, now_live
        time.sleep(0.6)
        segments.append((live_since, float("inf"), live_now))
    finally:
        stop.set()
        for t in threads:
            t.join()
        admin.close()

    assert failures == [], failures[:5]
    assert len(answers) > 200
    counts = Counter(v for _, _, v in answers)
    assert set(counts) == {"1", "2"}
    for sent, done, version in answers:
        allowed = set().union(*(vs for start, end, vs in segments if start <= done and end >= sent))
        assert version in allowed, (sent, done, version, segments)
