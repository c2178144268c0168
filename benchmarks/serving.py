"""Serving benchmark: modelhost vs bare FastAPI, LitServe, BentoML and MLServer on the iris ONNX model.

Every server runs at once, each in its own process group (peers in their own venvs under
benchmarks/.venvs, made by setup_peers.sh); a load generator in its own process drives one server at a
time with CLIENTS concurrent single-row clients. Rounds go round-robin over the servers, the starting
server rotating each round, so background load hits all alike; the figures are medians over rounds.

    .venv/bin/python benchmarks/serving.py [--rounds 5] [--seconds 5] [--clients 16] [--only a,b]

Everything is on 127.0.0.1 and stops by itself; logs and a JSON result go to benchmarks/.runs/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    HERE,
    MODELHOST_BIN,
    Server,
    default_loadgen,
    ensure_venvs,
    load,
    machine,
    median,
    pip_version,
    run_dir,
    running,
    venv_bin,
)

ROW = [5.1, 3.5, 1.4, 0.2]
PEER_FRAMEWORKS = ("litserve", "bentoml", "mlserver")
OIP_BODY = json.dumps(
    {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ROW}]}
).encode()
PLAIN_BODY = json.dumps({"inputs": [ROW]}).encode()

MAKE_MODEL = """
import sys, skops.io as sio
from pathlib import Path
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from modelhost.optimize.onnx_export import sklearn_to_onnx
x, y = load_iris(return_X_y=True)
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
sklearn_to_onnx(model, Path(sys.argv[1]), n_features=4)
"""


def prepare_model(run: Path) -> tuple[Path, dict[str, str]]:
    """The iris ONNX file every server loads, registered in a fresh modelhost home."""
    onnx_path = run / "iris.onnx"
    subprocess.run([str(MODELHOST_BIN / "python"), "-c", MAKE_MODEL, str(onnx_path)], check=True)
    # gRPC off: its default port may be taken on a shared machine, and only REST is measured here.
    env = {
        "MODELHOST_HOME": str(run / "modelhost-home"),
        "MODELHOST_LOG_LEVEL": "warning",
        "MODELHOST_GRPC_PORT": "0",
    }
    subprocess.run(
        [str(MODELHOST_BIN / "modelhost"), "models", "register", str(onnx_path), "--name", "iris"],
        check=True,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
    )
    return onnx_path, env


def mlserver_dir(run: Path, onnx_path: Path) -> Path:
    """MLServer's model repository: one folder with model-settings.json and the custom runtime."""
    root = run / "mlserver"
    model = root / "iris"
    model.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "peers" / "mlserver_onnx_runtime.py", model / "mlserver_onnx_runtime.py")
    settings = {"name": "iris", "implementation": "mlserver_onnx_runtime.OnnxModel",
                "parameters": {"uri": str(onnx_path)}}  # fmt: skip
    (model / "model-settings.json").write_text(json.dumps(settings))
    return root


def servers(
    run: Path, onnx_path: Path, mh_env: dict[str, str], only: set[str] | None, base_src: str | None = None
) -> list[Server]:
    from common import free_port

    peers_dir = HERE / "peers"
    env = {"IRIS_ONNX": str(onnx_path), "PYTHONUNBUFFERED": "1"}
    out: list[Server] = []

    def add(name: str, make: Callable[[int], Server]) -> None:
        if only is None or name in only:
            server = make(free_port())
            server.remake = lambda: make(free_port())
            out.append(server)

    add("modelhost", lambda p: Server(
        "modelhost", [str(MODELHOST_BIN / "modelhost"), "serve", "--port", str(p)],
        f"http://127.0.0.1:{p}/v2/models/iris/infer", OIP_BODY, env=mh_env))  # fmt: skip
    add("mh-route", lambda p: Server(
        "mh-route", [str(MODELHOST_BIN / "modelhost"), "serve", "--port", str(p)],
        f"http://127.0.0.1:{p}/v2/models/iris/infer", OIP_BODY,
        env={**mh_env, "MODELHOST_INFER_FAST_PATH": "false"}))  # fmt: skip
    if base_src:  # the same CLI running another source tree (e.g. main's src/), for an A/B in one run
        add("mh-base", lambda p: Server(
            "mh-base", [str(MODELHOST_BIN / "modelhost"), "serve", "--port", str(p)],
            f"http://127.0.0.1:{p}/v2/models/iris/infer", OIP_BODY, env={**mh_env, "PYTHONPATH": base_src}))  # fmt: skip
    for variant, fixes in (("mh-what-if", ["async_deps", "inline_predict"]), ("mh-deps", ["async_deps"]),
                           ("mh-inline", ["inline_predict"])):  # fmt: skip
        add(variant, lambda p, v=variant, f=fixes: Server(
            v, [str(MODELHOST_BIN / "python"), str(HERE / "experiments" / "what_if_serve.py"), str(p), *f],
            f"http://127.0.0.1:{p}/v2/models/iris/infer", OIP_BODY, env=mh_env))  # fmt: skip
    add("fastapi", lambda p: Server(
        "fastapi", [venv_bin("fastapi"), "-m", "uvicorn", "fastapi_app:app", "--port", str(p),
                    "--log-level", "warning", "--no-access-log"],
        f"http://127.0.0.1:{p}/predict", PLAIN_BODY, env=env, cwd=peers_dir))  # fmt: skip
    add("litserve", lambda p: Server(
        "litserve", [venv_bin("litserve"), "litserve_app.py", str(p)],
        f"http://127.0.0.1:{p}/predict", PLAIN_BODY, env=env, cwd=peers_dir))  # fmt: skip
    add("bentoml", lambda p: Server(
        "bentoml", [venv_bin("bentoml", "bentoml"), "serve", "bentoml_service:Iris", "--host", "127.0.0.1", "--port", str(p)],
        f"http://127.0.0.1:{p}/predict", PLAIN_BODY,
        env={**env, "BENTOML_DO_NOT_TRACK": "true"}, cwd=peers_dir))  # fmt: skip
    add("mlserver", lambda p: Server(
        "mlserver", [venv_bin("mlserver", "mlserver"), "start", str(mlserver_dir(run, onnx_path))],
        f"http://127.0.0.1:{p}/v2/models/iris/infer", OIP_BODY,
        env={**env, "MLSERVER_HTTP_PORT": str(p), "MLSERVER_GRPC_PORT": str(free_port()),
             "MLSERVER_METRICS_PORT": str(free_port()), "MLSERVER_HOST": "127.0.0.1"}))  # fmt: skip
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per server per round")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--what-if", action="store_true",
                   help="also run modelhost with the fixes of experiments/what_if_serve.py patched in")  # fmt: skip
    p.add_argument(
        "--only",
        help="comma-separated subset of modelhost,mh-route,mh-what-if,mh-deps,mh-inline,fastapi,litserve,bentoml,mlserver",
    )
    p.add_argument("--loadgen", choices=["wrk", "python"], default=default_loadgen(),
                   help="load generator for every server: wrk (C, apt install wrk) or loadgen.py (aiohttp)")  # fmt: skip
    p.add_argument(
        "--base-src", help="also run modelhost from this src/ directory as mh-base (A/B in one run)"
    )
    a = p.parse_args()
    only = set(a.only.split(",")) if a.only else None
    if only is None:
        only = {"modelhost", "fastapi", "litserve", "bentoml", "mlserver"} | (
            {"mh-what-if"} if a.what_if else set()
        )

    broken = ensure_venvs(["fastapi", "litserve", "bentoml", "mlserver", "loadgen"])
    if "loadgen" in broken:
        sys.exit("the load generator venv could not be installed; see benchmarks/setup_peers.sh")
    run = run_dir("serving")
    onnx_path, mh_env = prepare_model(run)
    if a.base_src:
        only.add("mh-base")
    all_servers = [s for s in servers(run, onnx_path, mh_env, only, a.base_src) if s.name not in broken]
    for b in broken:
        print(f"!! {b}: venv could not be installed, skipped", file=sys.stderr)

    versions = {
        "fastapi": pip_version("fastapi", "fastapi"),
        "litserve": pip_version("litserve", "litserve"),
        "bentoml": pip_version("bentoml", "bentoml"),
        "mlserver": pip_version("mlserver", "mlserver"),
    }
    print(f"machine: {machine()}")
    print(f"peers: {versions}; {a.clients} clients, {a.rounds} rounds x {a.seconds:g} s per server, "
          f"load generator {a.loadgen}")  # fmt: skip
    results: dict[str, list[dict]] = {}
    with running(all_servers, run) as up:
        for r in range(a.rounds):
            order = up[r % len(up) :] + up[: r % len(up)]
            for s in order:
                restarted = s.ensure_alive(run)
                res = load(
                    s.url, s.body, run, clients=a.clients, seconds=a.seconds, warmup=a.warmup, tool=a.loadgen
                )
                res["restarted_before"] = restarted
                if s.proc is not None and s.proc.poll() is not None:
                    res["died"] = True  # not counted in the medians; the next round restarts it
                results.setdefault(s.name, []).append(res)
                print(f"round {r + 1} {s.name:10s} {res['rps']:8.0f} rps  p50 {res['p50_ms']:6.2f} ms  "
                      f"p99 {res['p99_ms']:6.2f} ms  errors {res['errors']}", flush=True)  # fmt: skip
                time.sleep(0.5)

    def live(rs: list[dict]) -> list[dict]:
        return [x for x in rs if not x.get("died")]

    summary = {
        name: {
            "rps": median([x["rps"] for x in live(rs)]),
            "p50_ms": median([x["p50_ms"] for x in live(rs)]),
            "p99_ms": median([x["p99_ms"] for x in live(rs)]),
            "errors": sum(x["errors"] for x in live(rs)),
            "rounds": len(live(rs)),
        }
        for name, rs in results.items()
    }
    print(f"\nmedians over {a.rounds} rounds ({a.clients} concurrent clients, iris ONNX, 1 row/request)")
    print(f"{'server':10s} {'rps':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>7s}  modelhost ratio (rps)")
    mh = summary.get("modelhost")
    for name, s in summary.items():
        ratio = f"{mh['rps'] / s['rps']:.2f}x" if mh and name != "modelhost" and s["rps"] else ""
        if name == "mh-base":
            ratio = f"(modelhost from {a.base_src}: new/base {mh['rps'] / s['rps']:.2f}x)" if mh else ""
        elif name == "mh-route":
            ratio = (
                f"(modelhost with MODELHOST_INFER_FAST_PATH=false: {mh['rps'] / s['rps']:.2f}x)" if mh else ""
            )
        elif name.startswith("mh-"):
            ratio = "(not shipped: src/ with the profile's fixes patched in)"
        lost = f" [{a.rounds - s['rounds']} round(s) lost: server died]" if s["rounds"] < a.rounds else ""
        print(
            f"{name:10s} {s['rps']:8.0f} {s['p50_ms']:8.2f} {s['p99_ms']:8.2f} {s['errors']:7d}  {ratio}{lost}"
        )
    if mh:
        peers = {n: s for n, s in summary.items() if n in PEER_FRAMEWORKS}
        if peers:
            best = max(peers, key=lambda n: peers[n]["rps"])
            best_p99 = min(s["p99_ms"] for s in peers.values())
            print(
                f"\nvs best peer framework ({best}): {mh['rps'] / peers[best]['rps']:.2f}x rps (target >= 1.5x)"
            )
            print(f"p99 {mh['p99_ms']:.2f} ms vs best peer p99 {best_p99:.2f} ms (target <=)")
        if "mh-what-if" in summary and peers and "fastapi" in summary:
            w = summary["mh-what-if"]
            print(f"what-if: {w['rps'] / peers[best]['rps']:.2f}x best peer, "
                  f"{w['rps'] / summary['fastapi']['rps']:.2f}x bare FastAPI, p99 {w['p99_ms']:.2f} ms")  # fmt: skip
        if "fastapi" in summary:
            print(f"vs bare FastAPI: {mh['rps'] / summary['fastapi']['rps']:.2f}x rps (target >= 0.8x)")
    (run / "result.json").write_text(
        json.dumps(
            {
                "machine": machine(),
                "loadgen": a.loadgen,
                "versions": versions,
                "rounds": results,
                "summary": summary,
            },
            indent=1,
        )
    )
    print(f"\nlogs and result.json in {run}")


if __name__ == "__main__":
    main()
