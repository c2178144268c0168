"""``modelhost drift`` and ``modelhost status``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from modelhost.cli.common import JsonOpt, json_mode, out, print_json, registry, run


def drift(
    model_ref: Annotated[str, typer.Argument(help="NAME or NAME@ALIAS.")],
    version: Annotated[str | None, typer.Option(help="Exact version.")] = None,
    limit: Annotated[int, typer.Option(help="Use at most this many latest logged requests.")] = 5000,
    as_json: JsonOpt = False,
) -> None:
    """Data and prediction drift of a version against its reference data (PSI, KS, chi²)."""
    from modelhost.monitoring.drift import compute_drift

    def body() -> None:
        reg = registry()
        info = reg.resolve(model_ref, version)
        report = compute_drift(reg, info, limit)
        if json_mode(as_json):
            print_json(report.to_dict())
            return
        out.print(f"[bold]{info.model}[/] version {info.version}: {report.reference_rows} reference rows, "
                  f"{report.current_rows} logged rows")  # fmt: skip
        if report.note:
            out.print(report.note)
            return
        table = Table("feature", "kind", "test", "score", "p-value", "drift")
        for f in report.features:
            colour = {"none": "green", "moderate": "yellow", "major": "red"}[f.severity]
            table.add_row(
                f.feature, f.kind, f.test, f"{f.score:.4f}", f"{f.p_value:.4g}", f"[{colour}]{f.severity}[/]"
            )
        out.print(table)
        out.print("[red]drift detected[/]" if report.drifted else "[green]no drift[/]")

    run(body)


def status(
    url: Annotated[
        str | None, typer.Option(envvar="MODELHOST_URL", help="Server URL.")
    ] = "http://127.0.0.1:8000",
    api_key: Annotated[str | None, typer.Option(envvar="MODELHOST_API_KEY", help="An admin API key.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """What a running server has loaded: models, versions, state, batching, workers, memory."""
    from modelhost.sdk import Client

    def body() -> None:
        with Client(url, api_key=api_key, timeout=10, max_retries=0) as client:
            data = client.status().to_dict()
        if json_mode(as_json):
            print_json(data)
            return
        out.print(f"pid {data['pid']}, ready {data['ready']}, max RSS {data['max_rss_mb']} MB")
        table = Table("model", "version", "state", "runtime", "in flight", "batches", "queue", "workers")
        for m in data["models"]:
            batching = m["batching"] or {}
            table.add_row(m["model"], str(m["version"]), m["state"], m["runtime"], str(m["inflight"]),
                          str(batching.get("batches", "-")), str(batching.get("queue_depth", "-")),
                          ",".join(map(str, m["workers"])) or "-")  # fmt: skip
        out.print(table)

    run(body)
