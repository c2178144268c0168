"""In-process cost of one OIP infer request through modelhost's ASGI app, without sockets or uvicorn.

Builds a fresh home with the iris ONNX model, starts the app's lifespan, and calls the ASGI app
directly with a pre-built request (scope, one body message), N times per round; prints microseconds
per request for the fast path and for the FastAPI route (``MODELHOST_INFER_FAST_PATH=false``),
interleaved rounds, medians. The figure is the server's own Python work per request: what it costs
on top of uvicorn's HTTP parsing and socket I/O, which every framework pays alike.

    python benchmarks/infer_path.py [--requests 2000] [--rounds 5] [--src DIR ...]

``--src`` runs the same measurement in a subprocess per source tree (e.g. main's ``src/``) and
prints them side by side, so a change can be judged A/B on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

from common import temp_home

ROW = [5.1, 3.5, 1.4, 0.2]
BODY = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROW}]}).encode()


def _scope() -> dict:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v2/models/iris/infer", "raw_path": b"/v2/models/iris/infer",
        "query_string": b"", "root_path": "", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5000),
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(BODY)).encode())],
    }  # fmt: skip


async def _measure(requests: int, rounds: int) -> dict[str, list[float]]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from modelhost.config import Settings
    from modelhost.optimize.onnx_export import sklearn_to_onnx
    from modelhost.registry import Registry
    from modelhost.serving.app import create_app

    home = temp_home("mh-infer-path-")
    x, y = load_iris(return_X_y=True)
    sklearn_to_onnx(LogisticRegression(max_iter=500).fit(x, y), home / "iris.onnx", n_features=4)
    out: dict[str, list[float]] = {}
    apps = {}
    for name, fast in (("fast path", True), ("route", False)):
        settings = Settings(home=home / name.replace(" ", "_"), grpc_port=0, infer_fast_path=fast)
        reg = Registry(settings)
        reg.register_version("iris", home / "iris.onnx")
        apps[name] = (create_app(settings, registry=reg), reg)
    body_msg = {"type": "http.request", "body": BODY, "more_body": False}
    statuses: list[int] = []

    async def receive() -> dict:
        return body_msg

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    fast_app, route_app = apps["fast path"][0], apps["route"][0]
    async with fast_app.router.lifespan_context(fast_app), route_app.router.lifespan_context(route_app):
        for _ in range(rounds):
            for name, (app, _) in apps.items():
                for _ in range(200):  # warm-up
                    await app(_scope(), receive, send)
                statuses.clear()
                t0 = time.perf_counter()
                for _ in range(requests):
                    await app(_scope(), receive, send)
                us = (time.perf_counter() - t0) / requests * 1e6
                if set(statuses) != {200}:
                    raise SystemExit(f"{name}: statuses {sorted(set(statuses))}")
                out.setdefault(name, []).append(us)
    for _, reg in apps.values():
        reg.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--src", action="append", help="measure these source trees instead (A/B)")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.src:
        results = {}
        for _ in range(a.rounds):  # alternate the trees round by round
            for src in a.src:
                cmd = [sys.executable, __file__, "--requests", str(a.requests), "--rounds", "1", "--json"]
                got = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": src, "MODELHOST_LOG_LEVEL": "warning"},
                                     capture_output=True, text=True, check=True)  # fmt: skip
                for name, us in json.loads(got.stdout.splitlines()[-1]).items():
                    results.setdefault(f"{src} {name}", []).extend(us)
        for name, us in results.items():
            print(
                f"{name:60s} {statistics.median(us):8.1f} us/request  (rounds: {', '.join(f'{u:.0f}' for u in us)})"
            )
        return
    res = asyncio.run(_measure(a.requests, a.rounds))
    if a.json:
        print(json.dumps(res))
        return
    for name, us in res.items():
        print(
            f"{name:10s} {statistics.median(us):8.1f} us/request  (rounds: {', '.join(f'{u:.0f}' for u in us)})"
        )


if __name__ == "__main__":
    main()
