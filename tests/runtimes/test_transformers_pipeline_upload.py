"""Registering a transformers directory remotely: the SDK sends it as a tar, the admin API unpacks it
safely (serving/rest/admin.py, client.py), and the CLI's --task flag."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from modelhost.cli import app as cli_app
from modelhost.client import Client
from modelhost.config import Settings
from modelhost.registry import Registry
from modelhost.serving.app import create_app
from tests.conftest import make_admin_key


@pytest.fixture
def admin(settings: Settings, registry: Registry) -> Iterator[TestClient]:
    token = make_admin_key(registry, settings)
    with TestClient(
        create_app(settings, registry=registry), headers={"Authorization": f"Bearer {token}"}
    ) as c:
        yield c


def test_sdk_uploads_a_directory_with_its_task(admin: TestClient, hf_dirs: dict[str, Path]) -> None:
    def forward(request: httpx.Request) -> httpx.Response:
        r = admin.request(request.method, request.url.path, content=request.content, headers=request.headers)
        return httpx.Response(r.status_code, headers=r.headers, content=r.content)

    token = admin.headers["Authorization"].split()[1]
    sdk = Client("http://test", api_key=token, transport=httpx.MockTransport(forward))
    record = sdk.register("t2t", hf_dirs["summarizer"], task="text2text-generation", description="tiny t5")
    assert (record["format"], record["runtime"]) == ("transformers", "transformers-pipeline")
    assert record["signature"]["extra"]["task"] == "text2text-generation"
    assert admin.get("/api/v1/models/t2t").json()["task"] == "text2text-generation"
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["good movie"]}]}
    r = admin.post("/v2/models/t2t/infer", json=body)
    assert r.status_code == 200 and r.json()["outputs"][0]["name"] == "generated_text"


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def test_unsafe_archives_are_refused(admin: TestClient) -> None:
    link = tarfile.TarInfo("model/config.json")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    escape = tarfile.TarInfo("../outside.json")
    for members, message in [([(link, b"")], "not a regular file"), ([(escape, b"{}")], "archive refused")]:
        r = admin.post("/api/v1/models/evil/versions", files={"file": ("model.tar", _tar(members))})
        assert r.status_code == 400 and message in r.json()["error"], r.text
    pickled = tarfile.TarInfo("model/pytorch_model.bin")
    config = tarfile.TarInfo("model/config.json")
    r = admin.post(
        "/api/v1/models/evil/versions",
        files={"file": ("model.tar", _tar([(config, b"{}"), (pickled, b"\x80\x04.")]))},
    )
    assert r.status_code == 400 and "pickle" in r.json()["error"]


def test_cli_register_with_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hf_dirs: dict[str, Path]
) -> None:
    monkeypatch.setenv("MODELHOST_HOME", str(tmp_path / "home"))
    r = CliRunner().invoke(
        cli_app,
        [
            "models",
            "register",
            str(hf_dirs["encoder"]),
            "--name",
            "enc",
            "--task",
            "feature-extraction",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert '"task": "feature-extraction"' in r.output and '"runtime": "transformers-pipeline"' in r.output
    r = CliRunner().invoke(
        cli_app, ["models", "register", str(hf_dirs["encoder"]), "--name", "x", "--task", "nope"]
    )
    assert r.exit_code != 0 and "unknown task 'nope'" in r.output
