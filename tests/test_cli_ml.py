from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from modelhost.cli import app


def test_train_and_fairness_commands(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MODELHOST_HOME", str(tmp_path))
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: s\ndata: {source: 'sklearn:breast_cancer'}\ncandidates: [{type: logistic_regression}]\n"
        "cv: {folds: 2}\nregister: {name: bc, alias: staging}\n"
    )
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(spec), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["version"] == 1 and summary["metrics"]["roc_auc"] > 0.9
    res = runner.invoke(app, ["fairness", "bc@staging", "--sensitive", "mean radius"])
    assert res.exit_code == 0, res.output
    assert "demographic parity difference" in res.output
    assert (
        json.loads((tmp_path / "reports" / "bc" / "v1" / "fairness.json").read_text())["sensitive"]
        == "mean radius"
    )


def test_train_errors_are_messages(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MODELHOST_HOME", str(tmp_path))
    runner = CliRunner()
    res = runner.invoke(app, ["train", "no_such_example"])
    assert res.exit_code == 1 and "examples:" in res.output and "digits_mlp" in res.output
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: s\ndata: {source: 'sklearn:iris', taget: y}\ncandidates: [{type: svc}]\nregister: {name: x}\n"
    )
    res = runner.invoke(app, ["train", str(spec)])
    assert res.exit_code == 1 and "data.taget: unknown field" in res.output


def test_train_federated_flags(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MODELHOST_HOME", str(tmp_path))
    spec = tmp_path / "f.yaml"
    spec.write_text(
        "name: f\nframework: torch\ndata: {source: 'sklearn:iris'}\n"
        "candidates: [{type: mlp, params: {hidden: [8], epochs: 5}}]\nregister: {name: fed}\n"
    )
    res = CliRunner().invoke(
        app, ["train", str(spec), "--federated", "--rounds", "2", "--clients", "3", "--json"]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["model"] == "fed" and "centralized_accuracy" in summary["metrics"]
    from modelhost.config import Settings
    from modelhost.registry import Registry

    params = Registry(Settings(home=tmp_path)).get_version("fed", 1).params
    assert params["federated"]["rounds"] == 2 and params["federated"]["clients"] == 3
