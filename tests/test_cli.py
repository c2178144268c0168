"""The CLI through Typer's runner, against a temporary MODELHOST_HOME."""

import json
import pickle
import socket
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelhost.cli import app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MODELHOST_HOME", str(tmp_path / "home"))
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args))

    return invoke


def test_help_everywhere(cli) -> None:  # type: ignore[no-untyped-def]
    for args in [
        ["--help"],
        ["models", "--help"],
        ["models", "register", "--help"],
        ["aliases", "set", "--help"],
        ["serve", "--help"],
        ["predict", "--help"],
        ["versions", "list", "--help"],
        ["text-classifier", "train", "--help"],
    ]:
        r = cli(*args)
        assert r.exit_code == 0 and "Usage" in r.output, args


def test_register_list_alias_history_predict(cli, iris_skops: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli(
        "models",
        "register",
        str(iris_skops),
        "--name",
        "iris",
        "--metric",
        "accuracy=0.97",
        "--param",
        "C=1.0",
        "--lineage",
        "data_hash=abc",
        "--alias",
        "production",
    )
    assert r.exit_code == 0, r.output
    assert "version 1" in r.output
    r = cli("models", "register", str(iris_skops), "--name", "iris", "--convert-onnx", "--json")
    assert json.loads(r.output)["format"] == "onnx"
    models = json.loads(cli("models", "list", "--json").output)
    assert models[0]["name"] == "iris" and models[0]["latest_version"] == 2
    versions = json.loads(cli("versions", "list", "iris", "--json").output)
    assert versions[0]["metrics"] == {"accuracy": 0.97} and versions[0]["params"] == {"C": 1.0}
    assert cli("aliases", "set", "iris", "production", "2", "--reason", "onnx is faster").exit_code == 0
    history = json.loads(cli("aliases", "history", "iris", "production", "--json").output)
    assert [(h["from_version"], h["to_version"]) for h in history] == [(None, 1), (1, 2)]
    assert history[1]["reason"] == "onnx is faster"
    r = cli("predict", "iris@production", "--json", "[[5.1, 3.5, 1.4, 0.2]]")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["model_version"] == "2" and out["outputs"][0]["data"] == [0]
    r = cli(
        "predict",
        "iris",
        "--version",
        "1",
        "--json",
        '{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP64","data":[6.7,3.0,5.2,2.3]}]}',
    )
    assert json.loads(r.output)["outputs"][0]["data"] == [2]
    assert "┃" in cli("models", "list").output  # a table for people


def test_user_mistakes_are_messages_not_tracebacks(cli, iris_skops: Path, tmp_path: Path, iris_model) -> None:  # type: ignore[no-untyped-def]
    evil = tmp_path / "m.pkl"
    evil.write_bytes(pickle.dumps(iris_model))
    cases = [
        (["models", "register", str(evil), "--name", "iris"], "pickle"),
        (["models", "register", str(tmp_path / "missing.onnx"), "--name", "iris"], "does not exist"),
        (["models", "register", str(iris_skops), "--name", "bad name"], "invalid model name"),
        (["models", "register", str(iris_skops), "--name", "iris", "--metric", "noequals"], "KEY=VALUE"),
        (["versions", "list", "nope"], "not registered"),
        (["predict", "nope", "--json", "[1]"], "not registered"),
    ]
    for args, message in cases:
        r = cli(*args)
        assert r.exit_code == 1, (args, r.output)
        assert message in r.output, (args, r.output)
        assert "Traceback" not in r.output
    assert cli("models", "register", str(iris_skops), "--name", "iris").exit_code == 0
    for args, message in [
        (["aliases", "set", "iris", "production", "5"], "no version 5"),
        (["aliases", "history", "iris", "production"], "no alias"),
        (["predict", "iris", "--json", "{bad"], "not valid JSON"),
        (["predict", "iris", "--json", "[[1, 2]]"], "expects [-1, 4]"),
        (["predict", "iris", "--json", "@/nonexistent.json"], "cannot read"),
    ]:
        r = cli(*args)
        assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output, (args, r.output)


def test_protected_alias_via_cli(cli, iris_skops: Path) -> None:  # type: ignore[no-untyped-def]
    cli("models", "register", str(iris_skops), "--name", "iris")
    cli("models", "register", str(iris_skops), "--name", "iris")
    assert cli("aliases", "set", "iris", "production", "1", "--protect").exit_code == 0
    r = cli("aliases", "set", "iris", "production", "2")
    assert r.exit_code == 1 and "--force" in r.output
    assert cli("aliases", "set", "iris", "production", "2", "--force").exit_code == 0
    aliases = json.loads(cli("aliases", "list", "iris", "--json").output)
    assert aliases == [{**aliases[0], "alias": "production", "version": 2, "protected": True}]


def test_bad_configuration_is_reported(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MODELHOST_PORT", "not-a-port")
    r = cli("models", "list")
    assert r.exit_code == 1 and "MODELHOST_" in r.output and "Traceback" not in r.output


def test_demo_registers_both_models_once(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    # The GGUF conversion is cached by sha256, so sharing that cache between tests is safe.
    monkeypatch.setenv("MODELHOST_CACHE_DIR", str(Path(tempfile.gettempdir()) / "modelhost-test-cache"))
    r = cli("demo")
    assert r.exit_code == 0, r.output
    assert "iris@production → version 1" in r.output and "digits@production → version 1" in r.output
    assert "smollm2@production → version 1" in r.output and "minilm@production → version 1" in r.output
    for task_model in ("whisper", "translate", "efficientnet", "speech-pt"):
        assert f"{task_model}@production → version 1" in r.output
    assert "curl" in r.output
    r = cli("demo")
    assert "already registered" in r.output
    models = {m["name"]: m for m in json.loads(cli("models", "list", "--json").output)}
    assert models["iris"]["aliases"] == {"production": 1, "staging": 2}
    assert models["digits"]["latest_version"] == 1


def test_readme_configuration_table_is_current() -> None:
    from modelhost.config import settings_table

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    start = readme.index("<!-- config-table:start -->") + len("<!-- config-table:start -->\n")
    end = readme.index("<!-- config-table:end -->")
    assert readme[start:end].strip() == settings_table(), (
        "README config table is stale: run `modelhost config`"
    )


def test_rollback_deployments_and_canary_commands(cli, iris_skops: Path) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        cli("models", "register", str(iris_skops), "--name", "iris")
    for v in ("1", "2", "3"):
        cli("aliases", "set", "iris", "production", v)
    r = cli("aliases", "rollback", "iris", "production", "--reason", "regression")
    assert r.exit_code == 0 and "version 2" in r.output
    assert "version 1" in cli("aliases", "rollback", "iris", "production").output
    r = cli("aliases", "rollback", "iris", "production")
    assert r.exit_code == 1 and "no earlier version" in r.output
    r = cli("deployments", "set", "iris", "--max-batch-size", "16", "--workers", "2", "--json")
    assert json.loads(r.output)["max_batch_size"] == 16 and json.loads(r.output)["workers"] == 2
    r = cli("deployments", "set", "iris", "--max-batch-size", "0")
    assert r.exit_code == 1 and "max_batch_size" in r.output
    assert cli("canary", "set", "iris", "production", "3", "10").exit_code == 0
    shown = json.loads(cli("deployments", "show", "iris", "--json").output)
    assert shown["canaries"] == {"production": {"version": 3, "percent": 10.0}}
    r = cli("canary", "set", "iris", "production", "3", "150")
    assert r.exit_code == 1 and "between 0 and 100" in r.output
    assert cli("canary", "clear", "iris", "production").exit_code == 0
    assert json.loads(cli("deployments", "show", "iris", "--json").output)["canaries"] == {}


def test_register_with_reference_and_drift(cli, iris_skops: Path, tmp_path: Path, iris_xy) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    csv = tmp_path / "ref.csv"
    np.savetxt(csv, iris_xy[0], delimiter=",", header="sl,sw,pl,pw", comments="")
    r = cli("models", "register", str(iris_skops), "--name", "iris", "--reference", str(csv))
    assert r.exit_code == 0, r.output
    report = json.loads(cli("drift", "iris", "--json").output)
    assert report["reference_rows"] == 150 and "at least 30" in report["note"]
    r = cli("drift", "iris")
    assert r.exit_code == 0 and "150 reference rows" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,x\n")
    r = cli("models", "register", str(iris_skops), "--name", "iris", "--reference", str(bad))
    assert r.exit_code == 1 and "cannot read reference data" in r.output


def test_serve_refuses_a_taken_grpc_port(cli) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = cli("serve", "--grpc-port", str(port), "--no-load")
    assert r.exit_code == 1 and f"cannot serve gRPC on 127.0.0.1:{port}" in r.output, r.output
    assert "--no-grpc" in r.output and "Traceback" not in r.output


def test_train_text_classifier_mistakes_are_messages(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("text-classifier", "train", "sentiment", "--csv", str(tmp_path / "missing.csv"))
    assert r.exit_code == 1 and "cannot read" in r.output and "Traceback" not in r.output
    one_label = tmp_path / "one.csv"
    one_label.write_text("text,label\ngood,pos\nfine,pos\n")
    r = cli("text-classifier", "train", "sentiment", "--csv", str(one_label))
    assert r.exit_code == 1 and "two distinct labels" in r.output
    good = tmp_path / "good.csv"
    good.write_text("text,label\ngood,pos\nbad,neg\n")
    r = cli("text-classifier", "train", "sentiment", "--csv", str(good), "--embedder", "nope")
    assert r.exit_code == 1 and "nope" in r.output


def test_serve_refuses_an_unknown_backend(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("serve", "--backend", "spark", "--no-grpc")
    assert r.exit_code != 0
    assert "--backend must be local or ray" in r.output
