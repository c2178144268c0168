"""SDK overhead: the same OIP v2 infer on iris through raw httpx and through modelhost.Client /
AsyncClient (spec layer, typed parsing, numpy encode/decode, retry bookkeeping).

One uvicorn server (auth off, demo models) runs in its own process; this process is the client. For
each way of calling, requests/s and the client's own CPU time per request (process_time, so load from
other processes on the machine does not count) are measured. Rounds alternate the ways; medians.

    .venv/bin/python benchmarks/sdk.py [--seconds 3] [--rounds 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import httpx
import numpy as np
from common import temp_home

ROW = [[5.1, 3.5, 1.4, 0.2]]
BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": ROW[0]}]}


def serve(port: int) -> None:
    import uvicorn

    from modelhost.config import Settings
    from modelhost.serving.app import create_app

    settings = Settings(port=port, log_level="warning", auth="none", grpc_port=0, prediction_log_rate=0)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _sync_ways(url: str) -> dict[str, Callable[[], object]]:
    from modelhost import Client

    raw = httpx.Client(base_url=url, timeout=30)
    sdk = Client(url)
    array = np.asarray(ROW)
    return {
        "httpx post+json": lambda: raw.post("/v2/models/iris/infer", json=BODY).json(),
        "Client.infer_request": lambda: sdk.infer_request("iris", BODY),
        "Client.infer (numpy)": lambda: sdk.infer("iris", {"input": array}),
        "Client.infer binary": lambda: sdk.infer("iris", {"input": array}, binary=True),
    }


def _measure_sync(call: Callable[[], object], seconds: float) -> tuple[float, float]:
    for _ in range(20):
        call()
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        call()
        n += 1
    return n / (time.perf_counter() - start), (time.process_time() - cpu) * 1e6 / n


async def _measure_async(url: str, use_sdk: bool, seconds: float, concurrency: int) -> tuple[float, float]:
    from modelhost import AsyncClient

    raw = httpx.AsyncClient(base_url=url, timeout=30)
    sdk = AsyncClient(url)
    array = np.asarray(ROW)

    async def one() -> object:
        if use_sdk:
            return await sdk.infer("iris", {"input": array})
        return (await raw.post("/v2/models/iris/infer", json=BODY)).json()

    for _ in range(20):
        await one()
    done = 0
    start, cpu = time.perf_counter(), time.process_time()
    deadline = start + seconds

    async def worker(call: Callable[[], Awaitable[object]]) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    await asyncio.gather(*(worker(one) for _ in range(concurrency)))
    rate, cpu_us = done / (time.perf_counter() - start), (time.process_time() - cpu) * 1e6 / done
    await raw.aclose()
    await sdk.aclose()
    return rate, cpu_us


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    from modelhost.config import Settings
    from modelhost.demo import register_demo_models
    from modelhost.registry import Registry

    home = temp_home("modelhost-bench-sdk-")
    os.environ["MODELHOST_HOME"] = str(home)
    reg = Registry(Settings())
    register_demo_models(reg)
    reg.close()
    port = 18000 + os.getpid() % 1000
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
            time.sleep(0.2)
        ways = _sync_ways(url)
        results: dict[str, list[tuple[float, float]]] = {}
        for _ in range(args.rounds):
            for name, call in ways.items():
                results.setdefault(name, []).append(_measure_sync(call, args.seconds))
            for name, use_sdk in ((f"httpx async x{args.concurrency}", False),
                                  (f"AsyncClient.infer x{args.concurrency}", True)):  # fmt: skip
                got = asyncio.run(_measure_async(url, use_sdk, args.seconds, args.concurrency))
                results.setdefault(name, []).append(got)
        print(f"{'way':<26} {'req/s':>8} {'client CPU µs/req':>18}")
        for name, runs in results.items():
            rate = statistics.median(r for r, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            print(f"{name:<26} {rate:>8.0f} {cpu:>18.0f}")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


if __name__ == "__main__":
    main()
