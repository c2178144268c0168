"""Gateway CLI: init, keys create|list|revoke|rotate, usage, audit, encryption."""

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelhost.cli import app

KEY = re.compile(r"mh_live_[0-9a-f]{12}_[A-Za-z0-9_-]+")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MODELHOST_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_init_prints_the_admin_key_once(cli) -> None:  # type: ignore[no-untyped-def]
    first = cli("init", "--json")
    assert first.exit_code == 0, first.output
    raw = json.loads(first.output)["key"]
    assert KEY.fullmatch(raw)
    again = cli("init")
    assert again.exit_code == 0 and not KEY.search(again.output) and "already exists" in again.output


def test_keys_lifecycle_and_audit(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli(
        "keys",
        "create",
        "--name",
        "svc",
        "--scope",
        "infer:iris*",
        "--limits",
        '{"rpm": 60}',
        "--expires",
        "30d",
    )
    assert r.exit_code == 0, r.output
    raw = KEY.search(r.output)
    assert raw is not None and "shown only now" in r.output
    key_id = raw.group(0)[len("mh_live_") : len("mh_live_") + 12]
    listed = json.loads(cli("keys", "list", "--json").output)
    assert [(k["key_id"], k["scopes"], k["limits"]) for k in listed] == [
        (key_id, ["infer:iris*"], {"rpm": 60})
    ]
    assert raw.group(0) not in cli("keys", "list").output
    rotated = json.loads(cli("keys", "rotate", key_id, "--json").output)
    assert rotated["rotated_from"] == key_id and KEY.fullmatch(rotated["key"])
    assert cli("keys", "revoke", rotated["key_id"]).exit_code == 0
    states = {k["key_id"]: k["revoked"] for k in json.loads(cli("keys", "list", "--json").output)}
    assert states == {key_id: True, rotated["key_id"]: True}
    events = json.loads(cli("audit", "--json", "--target", "key:").output)
    assert [e["action"] for e in reversed(events)] == [
        "key.create",
        "key.create",
        "key.revoke",
        "key.rotate",
        "key.revoke",
    ]
    assert {e["actor"] for e in events} == {"cli"}


def test_cli_mistakes_are_messages(cli) -> None:  # type: ignore[no-untyped-def]
    for args, message in [
        (("keys", "create", "--name", "x", "--scope", "root"), "invalid scope"),
        (("keys", "create", "--name", "x", "--scope", "infer", "--limits", "{oops"), "not valid JSON"),
        (("keys", "create", "--name", "x", "--scope", "infer", "--expires", "soon"), "--expires"),
        (("keys", "revoke", "ffffffffffff"), "no API key"),
        (("usage", "--since", "last week"), "YYYY-MM-DD"),
        (("encryption", "rewrap"), "no encryption key"),
    ]:
        r = cli(*args)
        assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output, (args, r.output)


def test_usage_report_and_csv(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("usage", "--csv")
    assert r.exit_code == 0 and r.output.startswith("key_id,model,version,day,requests")
    assert json.loads(cli("usage", "--json").output) == []


def test_encryption_new_key_and_rewrap(cli, iris_skops: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    key = cli("encryption", "new-key").output.strip()
    monkeypatch.setenv("MODELHOST_ENCRYPTION_KEY", key)
    assert cli("models", "register", str(iris_skops), "--name", "iris").exit_code == 0
    new = cli("encryption", "new-key").output.strip()
    monkeypatch.setenv("MODELHOST_ENCRYPTION_KEY", new)
    monkeypatch.setenv("MODELHOST_ENCRYPTION_OLD_KEYS", json.dumps([key]))
    r = cli("encryption", "rewrap")
    assert r.exit_code == 0 and "rewrapped 1 of 1" in r.output, r.output
    monkeypatch.delenv("MODELHOST_ENCRYPTION_OLD_KEYS")
    r = cli("predict", "iris", "--json", "[[5.1, 3.5, 1.4, 0.2]]")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["outputs"][0]["data"] == [0]  # decrypted with the new key only


def test_serve_tls_flags_are_checked(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("serve", "--ssl-certfile", str(tmp_path / "cert.pem"))
    assert r.exit_code == 1 and "both --ssl-certfile and --ssl-keyfile" in r.output
    r = cli("serve", "--ssl-certfile", str(tmp_path / "cert.pem"), "--ssl-keyfile", str(tmp_path / "key.pem"))
    assert r.exit_code == 1 and "does not exist" in r.output


def test_auth_none_off_loopback_is_refused(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MODELHOST_AUTH", "none")
    r = cli("serve", "--host", "0.0.0.0")
    assert r.exit_code == 1 and "loopback" in r.output
