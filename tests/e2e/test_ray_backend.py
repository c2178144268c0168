"""``modelhost serve --backend ray`` as a real process: the documented command, end to end.

It starts a Ray of its own (about 30 s on 2 cores) next to the in-process Ray of
tests/distributed, so it is opt-in: ``MODELHOST_SLOW_TESTS=1 .venv/bin/python -m pytest tests/e2e/test_ray_backend.py``.
The default suite still serves real inferences through Ray in tests/distributed/test_ray_serve.py.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port, modelhost_cmd

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("MODELHOST_SLOW_TESTS"), reason="slow (own Ray): MODELHOST_SLOW_TESTS=1"
    ),
]


def test_serve_backend_ray_serves_iris(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="ray[serve] is not installed (extra 'scale')")
    port = free_port()
    env = {**os.environ, "MODELHOST_HOME": str(tmp_path / "home"), "MODELHOST_RAY_NUM_CPUS": "0.25"}
    subprocess.run([*modelhost_cmd(), "demo"], env=env, check=True, capture_output=True, timeout=300)
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*modelhost_cmd(), "serve", "--backend", "ray", "--port", str(port), "--no-grpc"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.5)
        body = {
            "inputs": [
                {
                    "name": "input",
                    "shape": [2, 4],
                    "datatype": "FP64",
                    "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3],
                }
            ]
        }
        r = httpx.post(f"{url}/v2/models/iris@production/infer", json=body, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == [0, 2]
        assert "backend ray" in (tmp_path / "server.log").read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
