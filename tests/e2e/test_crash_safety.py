"""kill -9 the server in the middle of an artifact upload and in the middle of alias promotions; after a
restart the registry must be consistent: no half-written version, the alias on a complete version whose
sha256 verifies, the history agreeing with the alias."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelhost.config import Settings
from modelhost.registry import Registry

from .conftest import Server, run_server

pytestmark = pytest.mark.e2e


def auth(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.admin_key}"}


def _kill(server: Server) -> None:
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)


def _check_consistent(home: Path) -> Registry:
    con = sqlite3.connect(home / "registry.db")
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()
    reg = Registry(Settings(home=home))
    for model in reg.list_models():
        for v in reg.list_versions(model.name):
            assert reg.artifact_path(v).exists()  # verifies the sha256 pin too
        for alias in reg.list_aliases(model.name):
            history = reg.alias_history(model.name, alias.name)
            assert history[-1].to_version == alias.version
    return reg


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def test_kill_during_upload(home: Path, iris_skops: Path) -> None:
    with run_server(home) as server:
        before = {
            v["version"]
            for v in httpx.get(f"{server.url}/api/v1/models/iris/versions", headers=auth(server)).json()
        }
        payload = iris_skops.read_bytes()
        assert len(payload) > 256 * 40  # the upload below takes over 0.8 s; the kill comes at 0.3 s
        boundary = "modelhostcrash"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"iris.skops\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode()  # fmt: skip

        def slow_body() -> Iterator[bytes]:
            yield head
            for i in range(0, len(payload), 256):
                yield payload[i : i + 256]
                time.sleep(0.02)
            yield f"\r\n--{boundary}--\r\n".encode()

        def upload() -> None:
            with contextlib.suppress(httpx.HTTPError):  # the server dies under it
                httpx.post(f"{server.url}/api/v1/models/iris/versions", content=slow_body(), timeout=30,
                           headers={**auth(server), "Content-Type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip

        t = threading.Thread(target=upload)
        t.start()
        time.sleep(0.3)
        _kill(server)
        t.join()
    reg = _check_consistent(home)
    assert {v.version for v in reg.list_versions("iris")} == before
    reg.close()
    with run_server(home, command="serve") as again:  # restarts clean and serves
        body = {
            "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]
        }
        assert httpx.post(f"{again.url}/v2/models/iris@production/infer", json=body).status_code == 200


def test_kill_during_promotions(home: Path) -> None:
    moves = 0
    with run_server(home, MODELHOST_PREDICTION_LOG_RATE="0") as server:
        httpx.put(f"{server.url}/api/v1/models/iris/aliases/production", headers=auth(server),
                  json={"version": 1, "protect": False, "force": True}).raise_for_status()  # fmt: skip
        stop = threading.Event()

        def promote() -> None:
            nonlocal moves
            with httpx.Client(base_url=server.url, headers=auth(server), timeout=10) as c:
                while not stop.is_set():
                    try:
                        c.put("/api/v1/models/iris/aliases/production", json={"version": 1 + moves % 2})
                        moves += 1
                    except httpx.HTTPError:
                        return

        t = threading.Thread(target=promote)
        t.start()
        time.sleep(1.5)
        _kill(server)
        stop.set()
        t.join()
    assert moves > 5
    reg = _check_consistent(home)
    assert reg.get_alias("iris", "production").version in (1, 2)
    reg.close()
    assert not any(p.suffix == ".part" for p in (home / "artifacts").rglob("*"))
    os.sync()
