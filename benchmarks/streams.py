"""Concurrent generation streams through our scheduler, timed per token (shared by benchmarks/llm.py and
benchmarks/llm_gpu.py). Imports only torch and modelhost.dataplane, so it runs on a device machine that
has no server dependencies."""

from __future__ import annotations

import itertools
import threading
import time

from modelhost.dataplane.sampling import SamplingParams
from modelhost.dataplane.scheduler import GenerationRequest, Scheduler, TokenEvent


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarise(times: list[list[float]], start: float, elapsed: float) -> dict[str, float]:
    """Aggregate tokens/s, time to first token and inter-token gaps (ms) from per-token arrival times."""
    ttft = [t[0] - start for t in times if t]
    gaps = [b - a for t in times for a, b in itertools.pairwise(t)]
    total = sum(len(t) for t in times)
    return {
        "tokens": total,
        "elapsed_s": elapsed,
        "tokens_per_s": total / elapsed,
        "ttft_p50_ms": 1000 * pct(ttft, 0.5),
        "ttft_p99_ms": 1000 * pct(ttft, 0.99),
        "itl_p50_ms": 1000 * pct(gaps, 0.5),
        "itl_p99_ms": 1000 * pct(gaps, 0.99),
    }


def run_streams(
    scheduler: Scheduler, prompts: list[list[int]], tokens: int, params: SamplingParams | None = None
) -> dict[str, float]:
    """Submit one stream per prompt at once (greedy unless ``params``) and wait for all of them."""
    params = params or SamplingParams(temperature=0)
    times: list[list[float]] = [[] for _ in prompts]
    done = [threading.Event() for _ in prompts]
    start = time.perf_counter()
    for i, prompt in enumerate(prompts):

        def emit(e: TokenEvent, i: int = i) -> None:
            if e.token is not None:
                times[i].append(time.perf_counter())
            if e.finish_reason is not None:
                done[i].set()

        scheduler.submit(GenerationRequest(prompt, params, tokens), emit)
    for d in done:
        d.wait(600)
    return summarise(times, start, time.perf_counter() - start)
