"""Batching benchmark: 64 concurrent single-row clients against one model, adaptive batching on vs off,
next to the offline (in-process, batch predict) throughput of the same ONNX model.

The model: an MLP classifier on the scikit-learn digits (64 inputs -> HIDDEN -> 10 classes), trained
with scikit-learn and exported to ONNX by modelhost's own converter. A dense MLP is the common case
where batching pays: one row costs a pass over all the weights, 64 rows cost little more.

The same ONNX file is registered twice, ``mlp_off`` (``deployments set --max-batch-size 1``) and
``mlp_on`` (``--max-batch-size 64``), and served by ONE ``modelhost serve``; rounds alternate between
the two so background load hits both alike. Figures are medians over rounds.

    .venv/bin/python benchmarks/batching.py [--rounds 3] [--seconds 5] [--clients 64] [--hidden 4096,4096]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    MODELHOST_BIN,
    Server,
    default_loadgen,
    ensure_venvs,
    free_port,
    load,
    machine,
    median,
    run_dir,
    running,
)

MAKE_MODEL = """
import sys, warnings, json
from pathlib import Path
import numpy as np
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier
from modelhost.optimize.onnx_export import sklearn_to_onnx
warnings.filterwarnings("ignore")  # ConvergenceWarning: a few epochs are enough for a benchmark
hidden = tuple(int(h) for h in sys.argv[2].split(","))
x, y = load_digits(return_X_y=True)
model = MLPClassifier(hidden_layer_sizes=hidden, max_iter=int(sys.argv[3]), random_state=0).fit(x / 16.0, y)
sklearn_to_onnx(model, Path(sys.argv[1]), n_features=64)
print(json.dumps({"train_accuracy": float(model.score(x / 16.0, y)), "row": (x[0] / 16.0).tolist()}))
"""

# Offline throughput: the same file in-process with modelhost's ONNX runtime (same session options),
# measured in every round next to the servers so background load hits it alike.
OFFLINE = """
import sys, time, json
from pathlib import Path
import numpy as np
from modelhost.config import Settings
from modelhost.runtimes.onnx import OnnxRuntime
settings, path = Settings(), Path(sys.argv[1])
sig = OnnxRuntime.inspect(path, settings)
rt = OnnxRuntime(path, sig, settings)
rt.load()
name, outs = sig.inputs[0].name, [o.name for o in sig.outputs]
out = {}
for batch in sorted({int(b) for b in sys.argv[2].split(",")}):
    x = {name: np.random.default_rng(0).random((batch, 64), dtype=np.float32)}
    rt.predict(x, outs)
    rows, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < float(sys.argv[3]):
        rt.predict(x, outs)
        rows += batch
    out[f"batch_{batch}_rows_per_s"] = rows / (time.perf_counter() - t0)
print(json.dumps(out))
"""


def batch_counts(port: int, model: str) -> tuple[float, float, float, float, float]:
    """(rows, batches, model busy seconds, wall clock, model thread CPU seconds) for ``model`` so far,
    from the server's metrics."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    found = {
        "modelhost_batch_size_sum{": 0.0,
        "modelhost_batch_size_count{": 0.0,
        "modelhost_model_busy_seconds{": 0.0,
        "modelhost_model_busy_cpu_seconds{": 0.0,
    }
    for line in text.splitlines():
        for prefix in found:
            if line.startswith(prefix) and f'model="{model}"' in line:
                found[prefix] += float(line.rsplit(" ", 1)[1])
    rows, batches, busy, busy_cpu = found.values()
    return rows, batches, busy, time.perf_counter(), busy_cpu


def process_cpu(server: Server) -> float:
    """CPU seconds (user + system) used so far by the server process and its threads."""
    assert server.proc is not None
    fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--batch", type=int, default=64, help="max batch size when batching is on")
    p.add_argument("--max-wait-ms", type=float, default=0.0, help="max wait when batching is on")
    p.add_argument("--hidden", default="4096,4096", help="hidden layer sizes of the MLP")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--loadgen", choices=["wrk", "python"], default=default_loadgen(),
                   help="load generator: wrk (C, apt install wrk) or loadgen.py (aiohttp)")  # fmt: skip
    a = p.parse_args()
    if ensure_venvs(["loadgen"]):
        sys.exit("the load generator venv could not be installed; see benchmarks/setup_peers.sh")
    run = run_dir("batching")
    py, mh = str(MODELHOST_BIN / "python"), str(MODELHOST_BIN / "modelhost")
    onnx_path = run / "digits_mlp.onnx"
    made = subprocess.run([py, "-c", MAKE_MODEL, str(onnx_path), a.hidden, str(a.epochs)],
                          check=True, capture_output=True, text=True)  # fmt: skip
    info = json.loads(made.stdout)
    env = {**os.environ, "MODELHOST_HOME": str(run / "modelhost-home"), "MODELHOST_LOG_LEVEL": "warning",
           "MODELHOST_GRPC_PORT": "0"}  # fmt: skip
    for name, size in (("mlp_off", 1), ("mlp_on", a.batch)):
        subprocess.run([mh, "models", "register", str(onnx_path), "--name", name], check=True, env=env,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        wait = a.max_wait_ms if size > 1 else 0.0
        subprocess.run([mh, "deployments", "set", name, "--max-batch-size", str(size), "--max-wait-ms",
                        str(wait)], check=True, env=env, stdout=subprocess.DEVNULL)  # fmt: skip

    print(f"machine: {machine()}; load generator {a.loadgen}, {a.clients} clients")
    print(f"model: sklearn MLPClassifier 64->{a.hidden.replace(',', '->')}->10 on digits, ONNX "
          f"({onnx_path.stat().st_size / 1e6:.1f} MB, train accuracy {info['train_accuracy']:.3f})")  # fmt: skip
    port = free_port()
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                   "data": info["row"]}]}).encode()  # fmt: skip
    url = f"http://127.0.0.1:{port}/v2/models/{{}}/infer"
    server = Server("modelhost", [mh, "serve", "--port", str(port)], url.format("mlp_on"), body,
                    env={k: env[k] for k in ("MODELHOST_HOME", "MODELHOST_LOG_LEVEL", "MODELHOST_GRPC_PORT")})  # fmt: skip
    results: dict[str, list[dict]] = {"mlp_off": [], "mlp_on": []}
    offline: list[dict[str, float]] = []
    with running([server], run) as up:
        if not up:
            sys.exit(f"modelhost did not start; see {run}")
        for r in range(a.rounds):
            order = ("mlp_off", "mlp_on", "offline")
            for name in order[r % 3 :] + order[: r % 3]:
                if name == "offline":
                    # at batch 1, at the batch size the server formed in its latest round, and at --batch
                    formed = (
                        round(results["mlp_on"][-1]["rows_per_batch"])
                        if results["mlp_on"]
                        else a.clients // 2
                    )
                    sizes = f"1,{max(formed, 1)},{a.batch}"
                    off_res = json.loads(subprocess.run(
                        [py, "-c", OFFLINE, str(onnx_path), sizes, str(a.seconds / 2)],
                        check=True, capture_output=True, text=True).stdout)  # fmt: skip
                    off_res["formed"] = formed
                    offline.append(off_res)
                    print(f"round {r + 1} offline  " + ", ".join(
                        f"batch {k.split('_')[1]} {v:7.0f}" for k, v in off_res.items() if k.startswith("batch_"))
                        + " rows/s", flush=True)  # fmt: skip
                    continue
                server.ensure_alive(run)
                before, cpu_before = batch_counts(port, name), process_cpu(server)
                res = load(
                    url.format(name),
                    body,
                    run,
                    clients=a.clients,
                    seconds=a.seconds,
                    warmup=a.warmup,
                    tool=a.loadgen,
                )
                after, cpu_after = batch_counts(port, name), process_cpu(server)
                batches = after[1] - before[1]
                res["rows_per_batch"] = (after[0] - before[0]) / batches if batches else 0.0
                res["model_busy"] = (after[2] - before[2]) / (after[3] - before[3])
                # the server's CPU per request besides the model (event loop, HTTP, our code), over the
                # requests answered between the two readings (wrk's warm-up run included)
                answered = res["rps"] * (after[3] - before[3])
                res["cpu_us_per_request_besides_model"] = (
                    (cpu_after - cpu_before - (after[4] - before[4])) / answered * 1e6 if answered else 0.0
                )
                # the model thread's CPU while predicting over its wall time: < 100 % = waiting for a core
                busy_wall = after[2] - before[2]
                res["model_cpu_share"] = (after[4] - before[4]) / busy_wall if busy_wall else 0.0
                results[name].append(res)
                print(f"round {r + 1} {name:8s} {res['rps']:7.0f} rps  p50 {res['p50_ms']:7.2f} ms  "
                      f"p99 {res['p99_ms']:7.2f} ms  errors {res['errors']}  "
                      f"rows/batch {res['rows_per_batch']:.1f}"
                      + (f"  model busy {res['model_busy']:.0%} (on a core {res['model_cpu_share']:.0%} of it), "
                         f"server CPU besides the model {res['cpu_us_per_request_besides_model']:.0f} us/request"
                         if name == "mlp_on" else ""),
                      flush=True)  # fmt: skip
                time.sleep(0.5)

    s = {n: {k: median([x[k] for x in rs]) for k in ("rps", "p50_ms", "p99_ms", "rows_per_batch", "model_busy",
                                                      "cpu_us_per_request_besides_model", "model_cpu_share")}
         for n, rs in results.items()}  # fmt: skip
    off, on = s["mlp_off"], s["mlp_on"]
    best_offline = median([o[f"batch_{a.batch}_rows_per_s"] for o in offline])
    single_offline = median([o["batch_1_rows_per_s"] for o in offline])
    formed_offline = median([o[f"batch_{max(o['formed'], 1)}_rows_per_s"] for o in offline])
    formed = median([o["formed"] for o in offline])
    print(f"\nmedians over {a.rounds} rounds, {a.clients} concurrent single-row clients")
    print(
        f"batching off (max batch 1):  {off['rps']:7.0f} rps  p50 {off['p50_ms']:.2f} ms  p99 {off['p99_ms']:.2f} ms"
    )
    print(
        f"batching on  (max batch {a.batch}): {on['rps']:7.0f} rps  p50 {on['p50_ms']:.2f} ms  p99 {on['p99_ms']:.2f} ms"
    )
    print(f"offline in-process:          {single_offline:7.0f} rows/s at batch 1, {best_offline:.0f} rows/s at batch {a.batch}"
          f" (the model's own batching gain: {best_offline / single_offline:.1f}x)")  # fmt: skip
    print(f"rows per executed batch (batching on), median over rounds: {on['rows_per_batch']:.1f}; "
          f"offline at that size (median over rounds, size {formed:g}): {formed_offline:.0f} rows/s")  # fmt: skip
    print(f"model busy with batching on (share of wall time in predict): {on['model_busy']:.0%}, of which on a "
          f"core {on['model_cpu_share']:.0%}; server CPU per request besides the model: "
          f"{on['cpu_us_per_request_besides_model']:.0f} us")  # fmt: skip
    print(f"on / off: {on['rps'] / off['rps']:.2f}x rps (target >= 5x)")
    print(f"on / offline batch-{a.batch} throughput: {on['rps'] / best_offline:.0%} (target >= 80 %)")
    print(f"on / offline at the batch size formed: {on['rps'] / formed_offline:.0%}")
    # Each round measures the server and the offline loop within a minute of each other: on a shared
    # machine their per-round ratios vary less than the medians of either.
    per_round = [(x["rps"] / o[f"batch_{a.batch}_rows_per_s"], x["rps"] / o[f"batch_{max(o['formed'], 1)}_rows_per_s"])
                 for x, o in zip(results["mlp_on"], offline, strict=False)]  # fmt: skip
    print("per round, on / offline batch-{} | at the size formed: {}  (medians {:.0%} | {:.0%})".format(
        a.batch, ", ".join(f"{b:.0%} | {f:.0%}" for b, f in per_round),
        median([b for b, _ in per_round]), median([f for _, f in per_round])))  # fmt: skip
    (run / "result.json").write_text(json.dumps(
        {"machine": machine(), "model": a.hidden, "offline": offline, "rounds": results, "summary": s}, indent=1))  # fmt: skip
    print(f"\nlogs and result.json in {run}")


if __name__ == "__main__":
    main()
