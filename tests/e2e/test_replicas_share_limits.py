"""Two server processes (replicas) over one registry and one Redis: a key's quota is shared, so 40
concurrent requests split across both replicas against a 10-request daily quota admit exactly 10."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from modelhost.client import Client

from ..gateway.conftest import redis_url  # noqa: F401 - the real redis-server fixture
from .conftest import run_server

pytestmark = pytest.mark.e2e
BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}


def test_two_replicas_share_one_quota_in_redis(tmp_path: Path, redis_url: str) -> None:  # noqa: F811
    shared = {
        "MODELHOST_RATE_LIMIT_BACKEND": "redis",
        "MODELHOST_REDIS_URL": redis_url,
        "MODELHOST_KEY_SECRET": "replica-shared-secret-" + "0" * 32,
        "MODELHOST_PREDICTION_LOG_RATE": "0",
    }
    with run_server(tmp_path, **shared) as first, run_server(tmp_path, command="serve", **shared) as second:
        with Client(first.url, api_key=first.admin_key) as admin:
            key = admin.create_key("shared", ["infer:iris"], limits={"requests_per_day": 10})["key"]
        codes: list[int] = []
        lock = threading.Lock()

        def call(url: str) -> None:
            r = httpx.post(f"{url}/v2/models/iris/infer", json=BODY, headers={"Authorization": f"Bearer {key}"},
                           timeout=30)  # fmt: skip
            with lock:
                codes.append(r.status_code)

        threads = [threading.Thread(target=call, args=((first if i % 2 else second).url,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(set(codes)) == [200, 429], codes
    assert codes.count(200) == 10
