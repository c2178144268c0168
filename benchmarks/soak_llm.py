"""LLM soak (``benchmarks/soak.py --llm``): a bounded run of mixed /v1 requests against SmolLM2 served by a
real ``modelhost serve``. After ``--warmup`` requests the server's RSS is the baseline; it is sampled
every 100 requests. Passes when there are no 5xx or transport errors, the RSS grew less than
``--max-growth-mb`` after warm-up, the scheduler ends with no running or waiting sequence, and a last
request is still answered.

Mix (cycled): chat (max_tokens 4) · completion n=2 · stream read to the end · stream abandoned after the
first token (asks for 128 tokens, ignore_eos) · prompt + max_tokens over the context (400) · logit_bias
outside the vocabulary (400) · unsupported parameter (400).
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
from typing import Any

import httpx
from common import free_port
from soak import rss_mb

CHAT = [{"role": "user", "content": "Give me one word for a colour."}]
KINDS = ("chat", "completion_n2", "stream", "abandoned_stream", "too_long", "bad_bias", "unknown_param")
EXPECTED = {"too_long": 400, "bad_bias": 400, "unknown_param": 400}


async def one(client: httpx.AsyncClient, i: int) -> tuple[str, int]:
    kind = KINDS[i % len(KINDS)]
    if kind == "chat":
        body: dict[str, Any] = {"model": "smollm2", "messages": CHAT, "max_tokens": 4, "temperature": 0.7}
        return kind, (await client.post("/v1/chat/completions", json=body)).status_code
    if kind == "completion_n2":
        body = {"model": "smollm2", "prompt": f"Item {i}:", "max_tokens": 4, "n": 2, "seed": i}
        return kind, (await client.post("/v1/completions", json=body)).status_code
    if kind in ("stream", "abandoned_stream"):
        body = {"model": "smollm2", "messages": CHAT, "stream": True, "max_tokens": 4}
        if kind == "abandoned_stream":
            body.update(max_tokens=128, ignore_eos=True)
        async with client.stream("POST", "/v1/chat/completions", json=body) as r:
            async for line in r.aiter_lines():
                if kind == "abandoned_stream" and line.startswith("data:") and '"content":""' not in line:
                    break  # the first token: leaving the block drops the connection mid-stream
            return kind, r.status_code
    if kind == "too_long":
        body = {"model": "smollm2", "prompt": "Hi", "max_tokens": 1_000_000}
        return kind, (await client.post("/v1/completions", json=body)).status_code
    if kind == "bad_bias":
        body = {"model": "smollm2", "messages": CHAT, "max_tokens": 2, "logit_bias": {"99999999": 1}}
        return kind, (await client.post("/v1/chat/completions", json=body)).status_code
    body = {"model": "smollm2", "messages": CHAT, "functions": []}
    return kind, (await client.post("/v1/chat/completions", json=body)).status_code


async def drive(
    url: str,
    first: int,
    total: int,
    concurrency: int,
    deadline: float,
    pid: int,
    samples: list[tuple[int, float]],
    timeout: float = 300,
) -> dict[str, int]:
    counts = {"ok": 0, "expected_4xx": 0, "unexpected_4xx": 0, "server_error": 0, "transport_error": 0}
    next_i = first
    done = 0

    async def worker() -> None:
        nonlocal next_i, done
        async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
            while next_i < first + total and time.monotonic() < deadline:
                i, next_i = next_i, next_i + 1
                try:
                    kind, status = await one(client, i)
                except httpx.HTTPError as exc:
                    counts["transport_error"] += 1
                    name = f"transport_{type(exc).__name__}"
                    counts[name] = counts.get(name, 0) + 1
                    continue
                if status == EXPECTED.get(kind, 200):
                    counts["ok" if status == 200 else "expected_4xx"] += 1
                elif status >= 500:
                    counts["server_error"] += 1
                else:
                    counts["unexpected_4xx"] += 1
                done += 1
                if done % 100 == 0:
                    samples.append((first + done, rss_mb(pid)))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counts


def scheduler_state(url: str) -> dict[str, float]:
    state: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith("modelhost_llm_sequences{") and 'model="smollm2"' in line:
            which = "running" if 'state="running"' in line else "waiting"
            state[which] = float(line.rsplit(" ", 1)[1])
    return state


def run_llm_soak(args: argparse.Namespace) -> int:
    bin_dir = Path(sys.executable).parent
    cache = Path(tempfile.gettempdir()) / "modelhost-test-cache"  # the GGUF conversion, shared with tests
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "MODELHOST_HOME": home,
            "MODELHOST_CACHE_DIR": str(cache),
            "MODELHOST_GRPC_PORT": "0",
            "MODELHOST_PORT": str(free_port()),
        }
        subprocess.run([bin_dir / "modelhost", "demo"], env=env, check=True, capture_output=True)
        server = subprocess.Popen([bin_dir / "modelhost", "serve"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        url = f"http://127.0.0.1:{env['MODELHOST_PORT']}"
        samples: list[tuple[int, float]] = []
        try:
            for _ in range(3000):
                try:
                    if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            warm = asyncio.run(
                drive(url, 0, args.warmup, args.concurrency, time.monotonic() + 600, server.pid, [])
            )
            start_rss = rss_mb(server.pid)
            samples.append((args.warmup, start_rss))
            started = time.monotonic()
            counts = asyncio.run(
                drive(
                    url,
                    args.warmup,
                    args.requests,
                    args.concurrency,
                    started + args.max_seconds,
                    server.pid,
                    samples,
                )
            )
            elapsed = time.monotonic() - started
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(scheduler_state(url).values()):
                time.sleep(0.2)
            state = scheduler_state(url)
            last = httpx.post(
                f"{url}/v1/chat/completions",
                json={"model": "smollm2", "messages": CHAT, "max_tokens": 2},
                timeout=120,
            )
            end_rss = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(15)
    done = sum(v for k, v in counts.items() if not k.startswith("transport_"))
    peak = max(rss for _, rss in samples)
    growth = end_rss - start_rss
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"warm-up: {args.warmup} requests {warm}")
    print(f"requests: {done} in {elapsed:.1f} s ({done / elapsed:.1f} rps), concurrency {args.concurrency}")
    print(f"results: {counts}")
    print("RSS samples (requests → MB): " + ", ".join(f"{n}→{rss:.0f}" for n, rss in samples))
    print(
        f"server RSS after warm-up {start_rss:.1f} MB, end {end_rss:.1f} MB (growth {growth:+.1f} MB), peak {peak:.1f} MB"
    )
    print(f"scheduler after the run: {state}; last request: {last.status_code}")
    ok = (
        not counts["server_error"]
        and not counts["transport_error"]
        and not counts["unexpected_4xx"]
        and growth < args.max_growth_mb
        and not any(state.values())
        and last.status_code == 200
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1
