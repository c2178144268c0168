"""Batch scoring: chunked (modelhost.pipelines.batch.score_file) vs. reading the whole file at once
(and a load-only run: the memory floor of the process before any data).

Both score the same CSV with the same registered model, each in its own process so peak RSS is
measured separately; prints wall time, rows/s and peak memory side by side with ratios.

    .venv/bin/python benchmarks/batch_scoring.py --rows 1000000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _setup(home: Path, rows: int) -> Path:
    from modelhost.config import Settings
    from modelhost.pipelines.data import smart_grid
    from modelhost.pipelines.run import run_pipeline
    from modelhost.pipelines.spec import parse_spec
    from modelhost.registry import Registry

    spec = parse_spec(
        {
            "name": "bench",
            "task": "regression",
            "data": {"source": "synthetic:smart_grid", "rows": 3000},
            "candidates": [{"type": "ridge"}],
            "cv": {"folds": 0},
            "register": {"name": "grid"},
        }
    )
    run_pipeline(spec, Registry(Settings(home=home)), show_progress=False)
    src = home / "big.csv"
    smart_grid(rows, seed=3).drop(columns="load_mw").to_csv(src, index=False)
    return src


def _child(mode: str, home: Path, src: Path, chunk_rows: int) -> None:
    from modelhost.config import Settings
    from modelhost.pipelines.batch import score_file
    from modelhost.pipelines.loaded import LoadedVersion
    from modelhost.registry import Registry

    loaded = LoadedVersion(Registry(Settings(home=home)), "grid")
    out = home / f"out-{mode}.csv"
    if mode == "load-only":  # the floor: interpreter, libraries and the model, no data
        return
    if mode == "chunked":
        score_file(loaded, str(src), str(out), chunk_rows=chunk_rows)
    else:
        import pandas as pd

        frame = pd.read_csv(src)
        features = loaded.info.lineage["feature_names"]
        frame["prediction"] = loaded.predict(frame[features].to_numpy(dtype=float))
        frame[["prediction"]].to_csv(out, index=False)


def _run(mode: str, home: Path, src: Path, chunk_rows: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode, str(home), str(src), str(chunk_rows)])
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{mode} failed")
    return time.perf_counter() - t0, usage.ru_maxrss  # KiB on Linux


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--chunk-rows", type=int, default=50_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        src = _setup(home, args.rows)
        print(f"{args.rows:,} rows, {src.stat().st_size / 2**20:.0f} MiB CSV, chunk {args.chunk_rows:,} rows")
        results = {m: _run(m, home, src, args.chunk_rows) for m in ("whole-file", "chunked", "load-only")}
        base_t, base_m = results["whole-file"]
        print(f"{'mode':<12}{'wall s':>9}{'rows/s':>12}{'peak RSS MiB':>14}{'time ×':>8}{'memory ×':>10}")
        for mode, (t, m) in results.items():
            print(
                f"{mode:<12}{t:>9.1f}{args.rows / t:>12,.0f}{m / 1024:>14.0f}{t / base_t:>8.2f}{m / base_m:>10.2f}"
            )


if __name__ == "__main__":
    main()
