"""The SDK against the real CLI server over TCP: sync and async clients, a real SSE stream, env-var
configuration, and retries on the server's own 429 answers (a key limited to 1 request per minute)."""

from __future__ import annotations

import asyncio

import pytest

from modelhost import AsyncClient, Client
from modelhost.errors import ModelNotFound, RateLimited
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]


def test_sync_client_streams_and_reads_env(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELHOST_URL", server.url)
    monkeypatch.setenv("MODELHOST_API_KEY", server.admin_key)
    with Client() as c:
        assert c.is_ready() and "iris" in {m.name for m in c.registered_models()}
        chunks = list(c.chat_stream("smollm2", "What is the capital of France?", max_tokens=8, temperature=0))
        assert len(chunks) >= 2 and "Paris" in "".join(ch.text for ch in chunks)
        with pytest.raises(ModelNotFound):
            c.chat("nope", "hi")


def test_async_client_and_server_side_rate_limit(server: Server) -> None:
    async def main() -> None:
        async with AsyncClient(server.url, api_key=server.admin_key) as admin:
            results = await asyncio.gather(*(admin.infer("iris", ROWS) for _ in range(4)))
            assert [r["predict"].tolist() for r in results] == [[0, 2]] * 4
            stream = await admin.chat_stream("smollm2", "Say hi", max_tokens=4, temperature=0)
            assert [chunk async for chunk in stream]
            key = await admin.create_key("e2e-sdk", ["infer"], limits={"rpm": 1})
        # the second request in the minute gets a real 429 with Retry-After; with retries off it raises
        async with AsyncClient(server.url, api_key=key.key, max_retries=0) as limited:
            assert (await limited.infer("iris", ROWS)).model_version
            with pytest.raises(RateLimited) as exc_info:
                await limited.infer("iris", ROWS)
            assert exc_info.value.status_code == 429 and float(exc_info.value.headers["retry-after"]) > 0

    asyncio.run(main())


def test_cli_uploads_to_a_server_and_reads_its_status(server: Server, iris_skops) -> None:  # type: ignore[no-untyped-def]
    import json

    from typer.testing import CliRunner

    from modelhost.cli import app

    runner = CliRunner()
    env = {"MODELHOST_URL": server.url, "MODELHOST_API_KEY": server.admin_key}
    args = ["models", "register", str(iris_skops), "--name", "cli-upload", "--alias", "production", "--json",
            "--url", server.url]  # fmt: skip
    r = runner.invoke(app, args, env=env)
    assert r.exit_code == 0, r.output
    record = json.loads(r.stdout)
    assert record["model"] == "cli-upload" and record["version"] == 1
    assert record["lineage"]["source"] == "upload:iris.skops"  # registered by the server, not locally
    with Client(server.url, api_key=server.admin_key) as c:
        assert c.get_model("cli-upload").aliases == {"production": 1}
    r = runner.invoke(app, ["--json", "status"], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ready"] is True
