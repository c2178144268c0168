"""Closed-loop HTTP load generator, run in its own process so it never shares an event loop with a server.

N clients each POST the same body in a loop for a fixed time; the first WARMUP seconds are not counted.
Prints one JSON object: requests, errors, rps, p50_ms, p99_ms (latency of successful requests).

    python loadgen.py URL BODY_FILE --clients 16 --seconds 5 --warmup 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp
import numpy as np


async def _client(
    session: aiohttp.ClientSession, url: str, body: bytes, start: float, stop: float, out: dict
) -> None:
    headers = {"Content-Type": "application/json"}
    while True:
        t0 = time.perf_counter()
        if t0 >= stop:
            return
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                ok = resp.status == 200
                if not ok and len(out["samples"]) < 3:
                    out["samples"].append(f"{resp.status}: {(await resp.text())[:200]}")
        except aiohttp.ClientError as exc:
            ok = False
            if len(out["samples"]) < 3:
                out["samples"].append(repr(exc))
        t1 = time.perf_counter()
        if t0 >= start:  # counted only when the request started after the warm-up
            if ok:
                out["lat"].append(t1 - t0)
            else:
                out["errors"] += 1


async def run(url: str, body: bytes, clients: int, seconds: float, warmup: float) -> dict:
    out: dict = {"lat": [], "errors": 0, "samples": []}
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        now = time.perf_counter()
        start, stop = now + warmup, now + warmup + seconds
        await asyncio.gather(*(_client(session, url, body, start, stop, out) for _ in range(clients)))
    lat = np.asarray(out["lat"]) * 1000.0
    return {
        "requests": len(lat),
        "errors": out["errors"],
        "error_samples": out["samples"],
        "rps": len(lat) / seconds,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("url")
    p.add_argument("body_file")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    a = p.parse_args()
    with open(a.body_file, "rb") as f:
        body = f.read()
    print(json.dumps(asyncio.run(run(a.url, body, a.clients, a.seconds, a.warmup))))


if __name__ == "__main__":
    main()
