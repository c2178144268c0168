"""Machine-learning commands: ``train``, ``optimize``, ``explain``, ``fairness``, ``score``.

Reports (explanations, fairness) are written as JSON + PNG under
``$MODELHOST_HOME/reports/<model>/v<version>/`` next to the version they describe.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from modelhost.cli.common import JsonOpt, json_mode, out, print_json, registry, run, working
from modelhost.errors import InvalidInput

EXAMPLES = Path(__file__).resolve().parent.parent / "pipelines" / "examples"


def _spec_path(spec: str) -> Path:
    path = Path(spec)
    if path.exists():
        return path
    example = EXAMPLES / f"{spec.removeprefix('example:')}.yaml"
    if example.exists():
        return example
    known = ", ".join(sorted(p.stem for p in EXAMPLES.glob("*.yaml")))
    raise InvalidInput(f"pipeline spec '{spec}' is neither a file nor an example; examples: {known}")


def _report_dir(reg: Any, model: str, version: int) -> Path:
    d = reg.settings.home / "reports" / model / f"v{version}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def train(
    spec: Annotated[
        str, typer.Argument(help="Pipeline spec (YAML file) or an example name, e.g. digits_mlp.")
    ],
    federated: Annotated[
        bool, typer.Option("--federated", help="Train with FedAvg over simulated clients.")
    ] = False,
    clients: Annotated[int | None, typer.Option(help="Federated clients (with --federated).")] = None,
    rounds: Annotated[int | None, typer.Option(help="Federated rounds (with --federated).")] = None,
    dp_noise: Annotated[
        float | None, typer.Option(help="Differential-privacy noise std (with --federated).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a training pipeline and register the best model."""

    def body() -> None:
        from modelhost.pipelines.run import run_pipeline
        from modelhost.pipelines.spec import FederatedSpec, load_spec

        s = load_spec(_spec_path(spec))
        if federated:
            fed = s.federated or FederatedSpec()
            updates = {
                k: v
                for k, v in {"clients": clients, "rounds": rounds, "dp_noise": dp_noise}.items()
                if v is not None
            }
            s = s.model_copy(update={"federated": fed.model_copy(update=updates), "framework": "torch"})
        result = run_pipeline(s, registry(), show_progress=not json_mode(as_json), actor="cli")
        summary: dict[str, Any] = {
            "model": result.version.model,
            "version": result.version.version,
            "format": result.version.format,
            "metrics": {k: v for k, v in result.metrics.items() if isinstance(v, float)},
            "plots": result.plots,
            "promoted": result.promoted,
            "gate": result.gate,
        }
        if result.search is not None:
            summary["best"] = {
                "model": result.search.kind,
                "params": result.search.params,
                "trials": result.search.trials,
                "pruned": result.search.pruned,
            }
        if json_mode(as_json):
            print_json(summary)
            return
        v = result.version
        out.print(f"registered [bold]{v.model}[/] version {v.version} ({v.format}, sha256 {v.sha256[:12]}…)")
        table = Table("metric", "value")
        for k, val in summary["metrics"].items():
            table.add_row(k, f"{val:.4f}")
        out.print(table)
        if "confusion_matrix" in result.metrics:
            out.print(
                f"confusion matrix (rows: true {result.metrics['labels']}): {result.metrics['confusion_matrix']}"
            )
        history = result.metrics.get("federated_rounds_accuracy")
        if history:
            out.print("FedAvg accuracy by round: " + " ".join(f"{a:.4f}" for a in history))
        for name, p in result.plots.items():
            out.print(f"{name}: {p}")
        if result.gate:
            out.print(f"promote_if: {result.gate}")

    run(body)


def optimize(
    ref: Annotated[str, typer.Argument(help="NAME@alias or NAME of the version to optimize.")],
    onnx: Annotated[bool, typer.Option("--onnx", help="Register an ONNX conversion.")] = False,
    quantize: Annotated[
        str | None, typer.Option(help="Register a dynamically quantized ONNX version (int8|uint8).")
    ] = None,
    prune: Annotated[
        float | None, typer.Option(help="Register a magnitude-pruned version (fraction of weights).")
    ] = None,
    distill_from: Annotated[
        str | None, typer.Option("--distill-from", help="Teacher NAME@alias: register a small student.")
    ] = None,
    student_hidden: Annotated[str, typer.Option(help="Student hidden layer sizes, comma-separated.")] = "32",
    temperature: Annotated[float, typer.Option(help="Distillation temperature.")] = 2.0,
    repeats: Annotated[int, typer.Option(help="Single-row calls timed per version.")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """Derive optimized versions and print a before/after table (size, latency, held-out quality)."""

    def body() -> None:
        from modelhost.optimize.report import table
        from modelhost.optimize.run import OptimizeRequest
        from modelhost.optimize.run import optimize as run_optimize

        try:
            hidden = tuple(int(h) for h in student_hidden.split(",") if h.strip())
        except ValueError:
            raise InvalidInput(
                f"--student-hidden takes comma-separated integers, got {student_hidden!r}"
            ) from None
        req = OptimizeRequest(onnx, quantize, prune, distill_from, hidden, temperature)
        with working(f"optimizing {ref} and timing each version…"):
            rows = run_optimize(registry(), ref, req, repeats)
        if json_mode(as_json):
            print_json([r.to_dict() for r in rows])
        else:
            out.print(table(rows))

    run(body)


def explain(
    ref: Annotated[str, typer.Argument(help="NAME@alias or NAME.")],
    rows: Annotated[int, typer.Option(help="Held-out rows explained with SHAP.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Permutation importance and SHAP values on the held-out set; saves PNG plots and JSON."""

    def body() -> None:
        from modelhost.explain.importance import explain_version
        from modelhost.pipelines.loaded import LoadedVersion

        reg = registry()
        loaded = LoadedVersion(reg, ref)
        d = _report_dir(reg, loaded.info.model, loaded.info.version)
        with working("computing permutation importance and SHAP values…"):
            report = explain_version(loaded, d, rows=rows)
        (d / "explain.json").write_text(json.dumps(report, indent=2))
        if json_mode(as_json):
            print_json(report)
            return
        table = Table("feature", "permutation importance", "± std", "mean |SHAP|")
        pi = report["permutation_importance"]
        order = sorted(range(len(report["features"])), key=lambda i: -pi["mean"][i])[:15]
        for i in order:
            table.add_row(
                report["features"][i],
                f"{pi['mean'][i]:.4f}",
                f"{pi['std'][i]:.4f}",
                f"{report['shap_mean_abs'][i]:.4f}",
            )
        out.print(table)
        out.print(f"saved {d / 'explain.json'} and plots {', '.join(report['plots'].values())}")

    run(body)


def fairness(
    ref: Annotated[str, typer.Argument(help="NAME@alias or NAME of a binary classifier.")],
    sensitive: Annotated[str, typer.Option(help="Feature column defining the groups.")],
    as_json: JsonOpt = False,
) -> None:
    """fairlearn metrics by group, demographic parity and equalized odds differences."""

    def body() -> None:
        from modelhost.explain.fairness import fairness_of_version
        from modelhost.pipelines.loaded import LoadedVersion

        reg = registry()
        loaded = LoadedVersion(reg, ref)
        with working("computing fairness metrics…"):
            report = fairness_of_version(loaded, sensitive)
        d = _report_dir(reg, loaded.info.model, loaded.info.version)
        (d / "fairness.json").write_text(json.dumps(report, indent=2))
        if json_mode(as_json):
            print_json(report)
            return
        table = Table("group", "count", "accuracy", "selection rate", "true positive rate")
        for g, m in report["by_group"].items():
            table.add_row(
                g,
                f"{m['count']:.0f}",
                f"{m['accuracy']:.4f}",
                f"{m['selection_rate']:.4f}",
                f"{m['true_positive_rate']:.4f}",
            )
        out.print(table)
        out.print(f"demographic parity difference: {report['demographic_parity_difference']:.4f}")
        out.print(f"equalized odds difference: {report['equalized_odds_difference']:.4f}")
        out.print(f"saved {d / 'fairness.json'}")

    run(body)


def score(
    ref: Annotated[str, typer.Argument(help="NAME@alias or NAME.")],
    src: Annotated[str, typer.Argument(help="Input .csv or .parquet (path or fsspec URL).")],
    dst: Annotated[str, typer.Argument(help="Output .csv or .parquet.")],
    chunk_rows: Annotated[int, typer.Option(help="Rows per chunk (memory stays flat).")] = 50_000,
    keep: Annotated[
        list[str] | None, typer.Option(help="Input column copied to the output (repeatable).")
    ] = None,
) -> None:
    """Batch-score a large file with a registered model, chunk by chunk, with a progress bar."""

    def body() -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from modelhost.pipelines.batch import score_file
        from modelhost.pipelines.loaded import LoadedVersion

        loaded = LoadedVersion(registry(), ref)
        with Progress(
            TextColumn("[bold]score[/] {task.completed:,.0f} rows"), BarColumn(), TimeElapsedColumn()
        ) as bar:
            task = bar.add_task("rows", total=None)
            stats = score_file(
                loaded,
                src,
                dst,
                chunk_rows=chunk_rows,
                keep=keep,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        out.print(f"scored {stats.rows:,} rows in {stats.chunks} chunks with {loaded.ref} → {stats.output}")

    run(body)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    for command in (train, optimize, explain, fairness, score):
        app.command()(command)
