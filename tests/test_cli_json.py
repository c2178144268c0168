"""``--json`` on every command that prints data (per command and global), tables by default, verbs and
the hidden former names, shell completion."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from modelhost.cli import app

Cli = Callable[..., Result]
VERSION_KEYS = {"model", "version", "format", "runtime", "sha256", "size_bytes", "signature", "metrics", "params",
                "tags", "lineage", "description", "created_by", "created_at", "aliases"}  # fmt: skip


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("MODELHOST_HOME", str(tmp_path / "home"))
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result

    return invoke


def _json(result: Result) -> Any:
    return json.loads(result.stdout)


def test_registry_commands_print_stable_json(cli: Cli, iris_skops: Path) -> None:
    registered = _json(
        cli("models", "register", str(iris_skops), "--name", "iris", "--metric", "acc=0.9", "--json")
    )
    assert (
        set(registered) == VERSION_KEYS
        and registered["version"] == 1
        and registered["metrics"] == {"acc": 0.9}
    )
    cli("models", "register", str(iris_skops), "--name", "iris")
    alias = _json(cli("aliases", "set", "iris", "production", "1", "--json"))
    assert alias == {**alias, "model": "iris", "alias": "production", "version": 1, "protected": False}
    assert set(alias) == {"model", "alias", "version", "protected", "updated_at", "updated_by"}
    # the global flag works for every command, before the command name
    models = _json(cli("--json", "models", "list"))
    assert [(m["name"], m["latest_version"], m["aliases"]) for m in models] == [
        ("iris", 2, {"production": 1})
    ]
    assert set(_json(cli("--json", "versions", "show", "iris", "2"))) == VERSION_KEYS
    assert [v["version"] for v in _json(cli("versions", "list", "iris", "--json"))] == [1, 2]
    assert _json(cli("models", "show", "iris", "--json"))["latest_version"] == 2
    cli("aliases", "set", "iris", "production", "2")
    assert _json(cli("aliases", "rollback", "iris", "production", "--json"))["version"] == 1
    history = _json(cli("aliases", "history", "iris", "production", "--json"))
    assert {(e["from_version"], e["to_version"]) for e in history} == {(None, 1), (1, 2), (2, 1)}
    assert _json(cli("aliases", "delete", "iris", "production", "--json")) == {
        "model": "iris", "alias": "production", "deleted": True}  # fmt: skip


def test_show_commands_default_to_tables(cli: Cli, iris_skops: Path) -> None:
    cli("models", "register", str(iris_skops), "--name", "iris")
    shown = cli("versions", "show", "iris", "1").stdout
    assert "sha256" in shown and "│" in shown  # a Rich table, not JSON
    with pytest.raises(json.JSONDecodeError):
        json.loads(shown)
    table = cli("deployments", "show", "iris").stdout
    assert "max batch size" in table and "default" in table


def test_rollout_and_key_commands_print_json(cli: Cli, iris_skops: Path) -> None:
    for _ in range(2):
        cli("models", "register", str(iris_skops), "--name", "iris")
    cli("aliases", "set", "iris", "production", "1")
    canary = _json(cli("canary", "set", "iris", "production", "2", "20", "--json"))
    assert canary["canaries"] == {"production": {"version": 2, "percent": 20.0}}
    assert _json(cli("canary", "delete", "iris", "production", "--json"))["canaries"] == {}
    cli("canary", "set", "iris", "production", "2", "5")
    assert "no canary" in cli("canary", "clear", "iris", "production").stdout  # the former name, hidden
    assert "clear" not in cli("canary", "--help").stdout
    dep = _json(cli("deployments", "set", "iris", "--max-batch-size", "4", "--json"))
    assert (
        set(dep) == {"model", "max_batch_size", "max_wait_ms", "workers", "canaries"}
        and dep["max_batch_size"] == 4
    )
    created = _json(cli("keys", "create", "--name", "svc", "--scope", "infer", "--json"))
    assert created["key"].startswith("mh_live_") and created["scopes"] == ["infer"]
    shown = _json(cli("keys", "show", created["key_id"], "--json"))
    assert shown["name"] == "svc" and "key" not in shown and shown["revoked"] is False
    revoked = _json(cli("keys", "revoke", created["key_id"], "--json"))
    assert revoked["key_id"] == created["key_id"] and revoked["revoked"] is True
    listed = _json(cli("--json", "keys", "list"))
    assert created["key_id"] in {k["key_id"] for k in listed} and all("key" not in k for k in listed)
    actions = {e["action"] for e in _json(cli("audit", "--json"))}
    assert {"key.create", "key.revoke"} <= actions
    assert _json(cli("usage", "--json")) == []


def test_config_json_and_shell_completion(cli: Cli) -> None:
    rows = _json(cli("config", "--json"))
    assert all(set(r) == {"variable", "default", "description"} for r in rows)
    assert "MODELHOST_PORT" in {r["variable"] for r in rows}
    script = cli("--show-completion", "bash").stdout
    assert "complete" in script and "_COMPLETE=complete_bash" in script
    assert "--install-completion" in cli("--help").stdout
