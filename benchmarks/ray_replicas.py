"""Ray Serve backend: 1 vs 2 replicas per model, side by side, through the modelhost data plane.

A random forest (digits, 300 trees; a few ms of CPU per small batch) is registered in a temporary
home; each mode serves it and ``--concurrency`` coroutines send one-row requests for ``--seconds``,
in interleaved rounds so machine noise hits every mode alike. Modes: the local backend (in-process
runtime), Ray with 1 replica, Ray with 2 replicas (each replica reserves 1 CPU). Prints rps, p50, p99
and the ratio to Ray x1. Batching is on (max_batch_size 32) as in a default server; with
``--max-batch-size 1`` every request is one call to a replica.

    .venv/bin/python benchmarks/ray_replicas.py [--seconds 8] [--rounds 2] [--concurrency 16] [--max-batch-size 1]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np
import skops.io as sio
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

from modelhost.config import Settings
from modelhost.dataplane.plane import DataPlane
from modelhost.dataplane.types import InferenceRequest, Tensor
from modelhost.distributed import make_repository
from modelhost.monitoring.metrics import Metrics
from modelhost.registry import Registry


async def run_mode(settings: Settings, registry: Registry, rows: np.ndarray, seconds: float,
                   concurrency: int) -> list[float]:  # fmt: skip
    registry.settings = settings
    plane = DataPlane(registry, make_repository(registry, settings, Metrics()), settings)
    await plane.load("digits")
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def client(i: int) -> None:
        n = i
        while time.monotonic() < stop:
            row = rows[n % len(rows) : n % len(rows) + 1]
            req = InferenceRequest(inputs=[Tensor("input", "FP64", row.shape, row)])
            t0 = time.perf_counter()
            await plane.infer("digits", None, req)
            latencies.append(time.perf_counter() - t0)
            n += concurrency

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    await plane.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument(
        "--max-batch-size", type=int, default=32, help="1 turns batching off: one replica call per request"
    )
    args = parser.parse_args()

    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    x, y = load_digits(return_X_y=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "digits.skops"
        sio.dump(RandomForestClassifier(n_estimators=args.trees, random_state=0, n_jobs=1).fit(x, y), path)
        base = Settings(
            home=Path(tmp) / "home",
            grpc_port=0,
            prediction_log_rate=0,
            log_level="warning",
            max_batch_size=args.max_batch_size,
        )
        registry = Registry(base)
        registry.register_version("digits", path)
        modes = {
            "local": base,
            "ray x1": base.model_copy(update={"backend": "ray", "ray_num_replicas": 1, "ray_num_cpus": 1}),
            "ray x2": base.model_copy(update={"backend": "ray", "ray_num_replicas": 2, "ray_num_cpus": 1}),
        }
        results: dict[str, list[float]] = {m: [] for m in modes}
        wall: dict[str, float] = dict.fromkeys(modes, 0.0)
        for _ in range(args.rounds):
            for name, settings in modes.items():
                t0 = time.perf_counter()
                results[name] += asyncio.run(run_mode(settings, registry, x, args.seconds, args.concurrency))
                wall[name] += time.perf_counter() - t0
        registry.close()
    ray.shutdown()
    base_rps = len(results["ray x1"]) / (args.seconds * args.rounds)
    print(f"{'mode':8} {'rps':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs ray x1':>10}")
    for name, lat in results.items():
        rps = len(lat) / (args.seconds * args.rounds)
        p50, p99 = np.percentile(lat, [50, 99]) * 1000
        print(f"{name:8} {rps:8.1f} {p50:8.2f} {p99:8.2f} {rps / base_rps:9.2f}x")


if __name__ == "__main__":
    main()
