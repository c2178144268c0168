"""Gateway overhead: OIP v2 infer on iris with the gateway off vs on (auth + limits + metering).

Each configuration runs as its own uvicorn server process over the same registry; a closed-loop
httpx client (CONCURRENCY requests in flight) measures requests/s. Rounds alternate the
configurations, so drift in machine load hits them alike; the result is the median per config.

    .venv/bin/python benchmarks/gateway.py [--seconds 5] [--rounds 3] [--concurrency 16] [--redis URL]

Configurations:
  off      gateway dependencies overridden: no key check, no limits, no metering (the baseline)
  on       Bearer key checked (cached), limits (rpm, concurrency, daily quota, budget) in memory, metering
  redis    as ``on`` with the counters in Redis (only with --redis)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
from common import temp_home

BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
LIMITS = {"rpm": 10**9, "concurrency": 10**6, "requests_per_day": 10**9, "budget_per_month": 10**6}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(mode: str, port: int) -> None:
    """Run one server (called in a subprocess)."""
    import uvicorn

    from modelhost.config import Settings
    from modelhost.gateway.keys import ANONYMOUS
    from modelhost.serving import deps
    from modelhost.serving.app import create_app

    settings = Settings(port=port, log_level="warning", auth="keys" if mode != "off" else "none")
    app = create_app(settings)
    if mode == "off":

        async def no_auth() -> object:
            return ANONYMOUS

        async def no_meter() -> object:
            yield SimpleNamespace(version="", rows=0)  # what the route writes to; nothing is recorded

        app.dependency_overrides[deps.authenticate] = no_auth
        app.dependency_overrides[deps.meter_model] = no_meter
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), robust to other load on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(
    url: str, headers: dict[str, str], seconds: float, concurrency: int, pid: int
) -> tuple[float, float]:
    """(requests per second, server CPU milliseconds per request)."""
    done = 0
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        for _ in range(20):  # warm-up
            r = await client.post("/v2/models/iris/infer", json=BODY)
            r.raise_for_status()
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                r = await client.post("/v2/models/iris/infer", json=BODY)
                if r.status_code != 200:
                    raise RuntimeError(f"{r.status_code}: {r.text}")
                done += 1

        start, cpu = time.perf_counter(), _cpu_seconds(pid)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - start), (_cpu_seconds(pid) - cpu) * 1000 / done


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server not ready in 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--redis", default=None, help="redis:// URL to also measure the Redis backend")
    parser.add_argument("--serve", nargs=2, metavar=("MODE", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return

    from modelhost.config import Settings
    from modelhost.demo import register_demo_models
    from modelhost.gateway.keys import KeyService
    from modelhost.registry import Registry

    home = temp_home()
    os.environ["MODELHOST_HOME"] = str(home)
    reg = Registry(Settings())
    register_demo_models(reg)
    _, raw = KeyService(reg.session, Settings()).create("bench", ["infer"], limits=LIMITS)
    reg.close()

    modes = ["off", "on"] + (["redis"] if args.redis else [])
    servers: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
    try:
        for mode in modes:
            env = dict(os.environ)
            if mode == "redis":
                env.update(MODELHOST_RATE_LIMIT_BACKEND="redis", MODELHOST_REDIS_URL=args.redis)
            port = _free_port()
            proc = subprocess.Popen([sys.executable, __file__, "--serve", mode, str(port)], env=env)
            servers[mode] = (f"http://127.0.0.1:{port}", proc)
        for url, proc in servers.values():
            _wait_ready(url, proc)
        results: dict[str, list[float]] = {m: [] for m in modes}
        cpu_ms: dict[str, list[float]] = {m: [] for m in modes}
        for _ in range(args.rounds):
            for mode in modes:
                url, proc = servers[mode]
                headers = {} if mode == "off" else {"Authorization": f"Bearer {raw}"}
                rps, ms = asyncio.run(_load(url, headers, args.seconds, args.concurrency, proc.pid))
                results[mode].append(rps)
                cpu_ms[mode].append(ms)
    finally:
        for _, proc in servers.values():
            proc.terminate()
            proc.wait(timeout=15)

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    print(f"machine: {os.cpu_count()} CPUs, {cpu}; python {platform.python_version()}")
    print(f"iris infer, {args.concurrency} in flight, {args.rounds} rounds x {args.seconds:g} s, median rps")
    base = statistics.median(results["off"])
    base_cpu = statistics.median(cpu_ms["off"])
    print(f"{'config':8} {'rps':>9} {'vs off':>8} {'cpu ms/req':>11} {'vs off':>8}   rps per round")
    for mode in modes:
        med, cpu = statistics.median(results[mode]), statistics.median(cpu_ms[mode])
        rounds = " ".join(f"{r:.0f}" for r in results[mode])
        print(f"{mode:8} {med:9.0f} {med / base:8.3f} {cpu:11.3f} {cpu / base_cpu:8.3f}   {rounds}")


if __name__ == "__main__":
    main()
