"""The GPU decode path on a Llama-shaped 1.24B model (Llama 3.2 1B shapes, random bf16 weights).

Runs on the device machine (torch + transformers only: it imports no server code), one call, phases
in order of importance, each skipped when ``--budget`` seconds would be exceeded:

1. correctness: the static-slot decoder (eager, and compiled) against the lean stepper's growing cache,
   logits relative error over a few decode steps (bf16: expect ~1e-2 or below);
2. plain decode loop through ``dataplane/static_decode.py`` (what the scheduler calls per step):
   batch-1 ms/step and 64-slot aggregate tokens/s, compiled (torch.compile + CUDA graphs) and eager;
3. the serving engine: ``dataplane/scheduler.py`` over the compiled 64-slot decoder, fed by client
   threads as the HTTP layer does: 1 stream (inter-token latency) and 64 concurrent streams greedy and
   sampled (aggregate tokens/s, TTFT and ITL p50/p99);
4. peer: HF transformers ``generate`` with its static cache and torch.compile, batch 1 and 64.

Targets (issue 5, on an H100): batch-1 decode <= 1.65 ms/step; 64 streams >= 11,500 tokens/s.

    python3 benchmarks/llm_gpu.py [--tokens 128] [--budget 420] [--small]

``--small`` is the same run on a small model, to check the script on a CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from streams import run_streams

from modelhost.dataplane.llama import LlamaStepper
from modelhost.dataplane.sampling import SamplingParams
from modelhost.dataplane.scheduler import Scheduler
from modelhost.dataplane.static_decode import StaticDecoder

LLAMA_1B: dict[str, object] = {  # Llama 3.2 1B: 1.24B parameters, tied embeddings
    "vocab_size": 128256,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}
SMALL = LLAMA_1B | {
    "vocab_size": 4096,
    "hidden_size": 256,
    "intermediate_size": 1024,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 32,
}
PROMPT_LEN, STREAMS = 128, 64
T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s] {message}", flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        from transformers import LlamaConfig, LlamaForCausalLM

        self.args = args
        self.cuda = torch.cuda.is_available()
        self.device = torch.device("cuda" if self.cuda else "cpu")
        dtype = torch.bfloat16 if self.cuda else torch.float32
        self.shape = SMALL if args.small else LLAMA_1B
        torch.manual_seed(0)
        with torch.device(self.device):
            self.model = LlamaForCausalLM(LlamaConfig(**self.shape)).to(dtype).eval()  # type: ignore[arg-type]
        self.stepper = LlamaStepper(self.model)
        params = sum(p.numel() for p in self.model.parameters())
        name = torch.cuda.get_device_name() if self.cuda else "cpu"
        log(f"synthetic Llama {params / 1e6:,.0f}M params, {dtype}, {name}, torch {torch.__version__}")
        rng = torch.Generator().manual_seed(0)
        vocab = int(self.shape["vocab_size"])  # type: ignore[call-overload]
        self.prompts = [
            torch.randint(0, vocab, (PROMPT_LEN,), generator=rng).tolist() for _ in range(STREAMS)
        ]
        self.capacity = PROMPT_LEN + args.tokens + 64
        self.decoders: dict[tuple[int, bool], StaticDecoder] = {}
        self.results: list[str] = []

    def left(self) -> float:
        return self.args.budget - (time.perf_counter() - T0)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def decoder(self, slots: int, compile: bool) -> StaticDecoder:
        if (slots, compile) not in self.decoders:
            self.decoders[slots, compile] = StaticDecoder(
                self.stepper, slots=slots, capacity=self.capacity, compile=compile
            )
        return self.decoders[slots, compile]

    # --- 1: correctness ----------------------------------------------------------------------------------

    def correctness(self) -> None:
        """Logits over a prompt and 6 greedy steps: the bf16 lean stepper, and the static decoder eager
        and compiled, each against the lean stepper on an fp32 copy of the weights."""
        import copy

        prompt = self.prompts[0]
        reference = LlamaStepper(copy.deepcopy(self.model).float()) if self.cuda else self.stepper

        def stepper_run(stepper: LlamaStepper, forced: list[int]) -> tuple[list[torch.Tensor], list[int]]:
            logits, layers = stepper(torch.tensor([prompt]), None, torch.arange(len(prompt))[None], [])
            out, chosen = [logits[0].float().clone()], [int(logits[0].argmax())]
            for step in range(6):
                token = forced[step] if forced else chosen[-1]
                logits, layers = stepper(
                    torch.tensor([[token]]), None, torch.tensor([[len(prompt) + step]]), layers
                )
                out.append(logits[0].float().clone())
                chosen.append(int(logits[0].argmax()))
            return out, chosen

        refs, tokens = stepper_run(reference, [])
        del reference

        def report(name: str, got: list[torch.Tensor]) -> None:
            errs = [float((g - r).norm() / r.norm()) for g, r in zip(got, refs, strict=True)]
            line = f"{name} vs fp32 lean stepper: logits rel err max {max(errs):.2e}"
            log(line)
            self.results.append(line)

        report("bf16 lean stepper", stepper_run(self.stepper, tokens)[0])
        for compile in (False, True):
            dec = self.decoder(STREAMS, compile)  # the decoder the loop and scheduler phases reuse
            got = [dec.prefill(1, prompt).float().clone()]
            for token in tokens[:-1]:
                feed = torch.zeros(STREAMS, dtype=torch.long)
                feed[1] = token
                got.append(dec.decode(feed)[1].float().clone())  # graph outputs live until the next step
            report(f"static decoder {'compiled' if compile else 'eager'}", got)
            dec.release(1)

    # --- 2: plain decode loop ----------------------------------------------------------------------------

    def loop(self, slots: int, compile: bool, label: str = "") -> None:
        t0 = time.perf_counter()
        dec = self.decoder(slots, compile)
        first = torch.stack([dec.prefill(s, self.prompts[s]) for s in range(slots)]).argmax(dim=-1)
        last = first
        for _ in range(3):  # compile, capture the CUDA graph, replay
            last = dec.decode(last).argmax(dim=-1)
        self.sync()
        warm = time.perf_counter() - t0
        steps = self.args.tokens - 8
        timings = []
        for _ in range(5):
            dec.lengths = [PROMPT_LEN + 1] * slots  # rewind: same positions, same attention span
            last = first
            self.sync()
            start = time.perf_counter()
            for _ in range(steps):
                last = dec.decode(last).argmax(dim=-1)
            self.sync()
            timings.append((time.perf_counter() - start) / steps)
        ms = 1000 * statistics.median(timings)
        label = label or ("compiled+graphs" if compile and self.cuda else "compiled" if compile else "eager")
        line = (
            f"plain loop {label:20s} {slots:2d} slots: {ms:.3f} ms/step, {slots * 1000 / ms:,.0f} tok/s "
            f"(5 runs x {steps} steps, spread {1000 * min(timings):.3f}-{1000 * max(timings):.3f}; "
            f"build+warm {warm:.1f} s)"
        )
        log(line)
        self.results.append(line)
        for s in range(slots):
            dec.release(s)

    # --- 3: the scheduler ---------------------------------------------------------------------------------

    def scheduler_run(self, scheduler: Scheduler, n: int, params: SamplingParams, label: str) -> None:
        r = run_streams(scheduler, self.prompts[:n], self.args.tokens, params)
        line = (
            f"scheduler {label:22s}: {r['tokens_per_s']:,.0f} tok/s ({r['tokens']:.0f} tokens in "
            f"{r['elapsed_s']:.2f} s), TTFT p50 {r['ttft_p50_ms']:.1f} / p99 {r['ttft_p99_ms']:.1f} ms, "
            f"ITL p50 {r['itl_p50_ms']:.2f} / p99 {r['itl_p99_ms']:.2f} ms"
        )
        log(line)
        self.results.append(line)

    def scheduler(self, compile: bool) -> None:
        dec = self.decoder(STREAMS, compile)
        t0 = time.perf_counter()
        dec.warm_up()  # as the runtime does at load: every attention span compiled and captured
        line = (
            f"scheduler: decoder warm-up (every span up to {self.capacity}) {time.perf_counter() - t0:.1f} s"
        )
        log(line)
        self.results.append(line)
        scheduler = Scheduler(
            self.stepper,
            static=dec,
            context_length=self.capacity,
            max_seqs=STREAMS,
            max_queue=256,
            prefill_budget=4096 if self.cuda else 512,  # the runtime's defaults
        )
        try:
            greedy = SamplingParams(temperature=0.0)
            tag = "compiled" if compile else "eager"
            self.scheduler_run(scheduler, 1, greedy, f"{tag} warm-up 1")
            self.scheduler_run(scheduler, 1, greedy, f"{tag} 1 stream greedy")
            self.scheduler_run(scheduler, STREAMS, greedy, f"{tag} {STREAMS} greedy")
            self.scheduler_run(scheduler, STREAMS, greedy, f"{tag} {STREAMS} greedy again")
            sampled = SamplingParams(temperature=0.8, top_p=0.9, seed=None)
            self.scheduler_run(scheduler, STREAMS, sampled, f"{tag} {STREAMS} t=0.8 top_p=0.9")
        finally:
            scheduler.close()

    # --- 4: HF generate, static cache + torch.compile -------------------------------------------------------

    def hf(self, batch: int) -> None:
        ids = torch.tensor(self.prompts[:batch], device=self.device)
        kwargs = dict(
            max_new_tokens=self.args.tokens,
            min_new_tokens=self.args.tokens,
            do_sample=False,
            cache_implementation="static",
            pad_token_id=0,
        )
        t0 = time.perf_counter()
        self.model.generate(ids, **kwargs)  # compiles
        self.sync()
        warm = time.perf_counter() - t0
        timings = []
        for _ in range(2):
            self.sync()
            start = time.perf_counter()
            out = self.model.generate(ids, **kwargs)
            self.sync()
            timings.append(time.perf_counter() - start)
        new = out.shape[1] - ids.shape[1]
        best = min(timings)
        line = (
            f"HF generate static+compile batch {batch:2d}: {batch * new / best:,.0f} tok/s, "
            f"{1000 * best / new:.3f} ms/token incl. prefill (first call {warm:.1f} s)"
        )
        log(line)
        self.results.append(line)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--budget", type=float, default=420.0, help="seconds; later phases are skipped")
    parser.add_argument("--small", action="store_true", help="a small model (CPU check of the script)")
    parser.add_argument(
        "--skip", default="", help="comma-separated phases to skip: check,loop,eager,sched,hf"
    )
    args = parser.parse_args()
    bench = Bench(args)
    skip = set(args.skip.split(","))
    phases: list[tuple[str, float, object]] = []
    if "check" not in skip:
        phases.append(("check", 60, bench.correctness))
    if "loop" not in skip:
        phases.append(("loop", 30, lambda: bench.loop(STREAMS, True)))
    if "eager" not in skip:
        phases += [("eager", 20, lambda n=n: bench.loop(n, False)) for n in (1, STREAMS)]
    if "sched" not in skip:
        phases.append(("sched", 45, lambda: bench.scheduler(bench.cuda)))
    if "loop" not in skip:
        # Batch 1 on a fresh dynamo cache, as a server with one model compiles it (after the 64-slot
        # compiles dynamo would make the batch dimension dynamic).
        phases.append(("loop", 30, lambda: (torch._dynamo.reset(), bench.loop(1, True))))
    if "hf" not in skip and bench.cuda:
        phases += [("hf", 90, lambda: bench.hf(1)), ("hf", 60, lambda: bench.hf(STREAMS))]
    for name, needs, run in phases:
        if bench.left() < needs:
            log(f"skipped a {name} phase: {bench.left():.0f} s left of the budget")
            continue
        try:
            run()  # type: ignore[operator]
        except Exception:
            log(f"{name} phase failed:\n{traceback.format_exc()}")
    print("\nsummary:")
    for line in bench.results:
        print("  " + line)


if __name__ == "__main__":
    main()
