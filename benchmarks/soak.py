"""Soak: N requests (default 10,000) against a real `modelhost serve`, a share of them invalid; reports
the server's RSS at start and end, error counts, and rps. Bounded in count and time; loopback only.

    .venv/bin/python benchmarks/soak.py --requests 10000 --concurrency 16
    .venv/bin/python benchmarks/soak.py --llm --requests 1000 --concurrency 8

``--llm`` drives SmolLM2 on /v1 instead (benchmarks/soak_llm.py): chat, completions with n=2, streams
read to the end, streams the client abandons after the first token, and bad requests; RSS is sampled
along the way and the scheduler must end with no sequence left and still answer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import free_port

GOOD = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
BAD = [
    b"{not json",
    b'{"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}',
    b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ["a", "b", "c", "d"]}]}',
]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def drive(url: str, total: int, concurrency: int, bad_every: int, deadline: float) -> dict[str, int]:
    counts = {"ok": 0, "client_error": 0, "server_error": 0, "transport_error": 0}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while not queue.empty() and time.monotonic() < deadline:
                i = queue.get_nowait()
                try:
                    if bad_every and i % bad_every == 0:
                        r = await client.post("/v2/models/iris/infer", content=BAD[i % len(BAD)])
                    else:
                        r = await client.post("/v2/models/iris/infer", json=GOOD)
                except httpx.HTTPError:
                    counts["transport_error"] += 1
                    continue
                key = (
                    "ok"
                    if r.status_code == 200
                    else "client_error"
                    if r.status_code < 500
                    else "server_error"
                )
                counts[key] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--bad-every", type=int, default=5, help="every Nth request is malformed (0: none)")
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--llm", action="store_true", help="soak the LLM on /v1 (see benchmarks/soak_llm.py)")
    parser.add_argument("--warmup", type=int, default=100, help="--llm: requests before the RSS baseline")
    parser.add_argument(
        "--max-growth-mb", type=float, default=64, help="--llm: allowed RSS growth after warm-up"
    )
    args = parser.parse_args()
    if args.llm:
        from soak_llm import run_llm_soak

        return run_llm_soak(args)
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "MODELHOST_HOME": home,
            "MODELHOST_GRPC_PORT": "0",
            "MODELHOST_PORT": str(free_port()),
        }
        subprocess.run([bin_dir / "modelhost", "demo"], env=env, check=True, capture_output=True)
        server = subprocess.Popen([bin_dir / "modelhost", "serve"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        url = f"http://127.0.0.1:{env['MODELHOST_PORT']}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            asyncio.run(drive(url, 500, args.concurrency, 0, time.monotonic() + 60))  # warm up
            start_rss = rss_mb(server.pid)
            started = time.monotonic()
            counts = asyncio.run(drive(url, args.requests, args.concurrency, args.bad_every,
                                       started + args.max_seconds))  # fmt: skip
            elapsed = time.monotonic() - started
            end_rss = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(15)
    done = sum(counts.values())
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"requests: {done} in {elapsed:.1f} s ({done / elapsed:.0f} rps), concurrency {args.concurrency}")
    print(f"results: {counts}")
    print(f"server RSS: start {start_rss:.1f} MB, end {end_rss:.1f} MB, growth {end_rss - start_rss:+.1f} MB")
    return 1 if counts["server_error"] or counts["transport_error"] else 0


if __name__ == "__main__":
    sys.exit(main())
