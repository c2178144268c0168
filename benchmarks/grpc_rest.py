"""REST vs gRPC on the same server, side by side: iris@production (skops), one row per request.

Starts ``modelhost demo --serve`` on free ports with a temporary home, then runs each client mode
for ``--seconds`` in interleaved rounds (so machine noise hits every mode alike) with
``--concurrency`` clients in one asyncio loop (aiohttp for REST, grpc.aio for gRPC; both client and
server share the machine), and prints rps, p50, p99 and the ratio to REST.

    .venv/bin/python benchmarks/grpc_rest.py [--seconds 5] [--rounds 2] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp  # the fastest asyncio HTTP client at hand (tritonclient[http] brings it)
import grpc
import httpx
import numpy as np
from common import free_port

from modelhost.serving.grpc.protos import oip_v2_pb2 as pb
from modelhost.serving.grpc.service import InferenceStub

ROW = [5.1, 3.5, 1.4, 0.2]
MODEL = "iris@production"


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "MODELHOST_HOME": str(home),
        "MODELHOST_PORT": str(port),
        "MODELHOST_GRPC_PORT": str(grpc_port),
        "MODELHOST_LOG_LEVEL": "warning",
    }
    script = Path(sys.executable).parent / "modelhost"
    log = open(home / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([str(script), "demo", "--serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {(home / 'server.log').read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return proc, port, grpc_port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server not ready in 120 s")


Call = Callable[[], Awaitable[None]]


async def run_mode(call: Call, seconds: float, concurrency: int) -> list[float]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def rest_call(http: aiohttp.ClientSession, port: int) -> Call:
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": ROW}]}
    url = f"http://127.0.0.1:{port}/v2/models/{MODEL}/infer"

    async def call() -> None:
        async with http.post(url, json=body) as r:
            r.raise_for_status()
            await r.read()

    return call


def grpc_call(stub: InferenceStub, raw: bool) -> Call:
    req = pb.ModelInferRequest(model_name=MODEL)
    inp = req.inputs.add(name="input", datatype="FP64", shape=[1, 4])
    if raw:
        req.raw_input_contents.append(np.array(ROW, "<f8").tobytes())
    else:
        inp.contents.fp64_contents.extend(ROW)

    async def call() -> None:
        await stub.ModelInfer(req)

    return call


async def bench(port: int, grpc_port: int, seconds: float, rounds: int, concurrency: int) -> None:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http,
        grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
    ):
        stub = InferenceStub(channel)
        modes: dict[str, Call] = {
            "REST JSON": rest_call(http, port),
            "gRPC typed contents": grpc_call(stub, raw=False),
            "gRPC raw contents": grpc_call(stub, raw=True),
        }
        for call in modes.values():  # warm-up: connections, lazy paths
            await run_mode(call, 0.5, concurrency)
        results: dict[str, list[float]] = {name: [] for name in modes}
        elapsed: dict[str, float] = dict.fromkeys(modes, 0.0)
        for _ in range(rounds):
            for name, call in modes.items():
                t0 = time.perf_counter()
                results[name] += await run_mode(call, seconds, concurrency)
                elapsed[name] += time.perf_counter() - t0
    base = len(results["REST JSON"]) / elapsed["REST JSON"]
    print(
        f"iris@production, 1 row/request, {concurrency} concurrent clients, {rounds}x{seconds:g} s per mode"
    )
    print(f"{'mode':<22}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs REST':>9}")
    for name, lat in results.items():
        rps = len(lat) / elapsed[name]
        p50, p99 = np.percentile(np.array(lat) * 1000, [50, 99])
        print(f"{name:<22}{rps:>9.0f}{p50:>9.2f}{p99:>9.2f}{rps / base:>8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, port, grpc_port = start_server(Path(tmp))
        try:
            asyncio.run(bench(port, grpc_port, args.seconds, args.rounds, args.concurrency))
        finally:
            proc.terminate()
            proc.wait(timeout=15)


if __name__ == "__main__":
    main()
