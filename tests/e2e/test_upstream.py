"""Remote OpenAI-compatible upstreams: a front ``modelhost serve`` (API keys required) proxies to the real
demo server (SmolLM2 + MiniLM) registered with ``modelhost upstream add``; driven with the openai SDK."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai import OpenAI

from .conftest import Server, free_port, modelhost_cmd, run_server

pytestmark = pytest.mark.e2e

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def _cli(front: Server, *args: str) -> str:
    done = subprocess.run(
        [*modelhost_cmd(), *args], env=front.env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def front(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("front-home")
    with run_server(home, command="serve", MODELHOST_AUTH="keys") as running:
        up = f"{server.url}/v1"
        _cli(
            running,
            "upstream",
            "add",
            "remote",
            "--base-url",
            up,
            "--model",
            "smollm2",
            "--alias",
            "production",
        )
        _cli(
            running,
            "upstream",
            "add",
            "remote-embed",
            "--base-url",
            up,
            "--model",
            "minilm",
            "-c",
            "embeddings",
        )
        down = f"http://127.0.0.1:{free_port()}/v1"
        _cli(
            running,
            "upstream",
            "add",
            "remote-down",
            "--base-url",
            down,
            "--model",
            "x",
            "--connect-timeout-s",
            "2",
        )
        yield running


def _key(front: Server, *scopes: str) -> tuple[str, str]:
    r = httpx.post(
        f"{front.url}/api/v1/keys",
        json={"name": "t", "scopes": list(scopes)},
        headers={"Authorization": f"Bearer {front.admin_key}"},
    )
    assert r.status_code == 201, r.text
    return r.json()["key"], r.json()["key_id"]


@pytest.fixture(scope="module")
def infer_key(front: Server) -> tuple[str, str]:
    return _key(front, "infer", "models:read")


@pytest.fixture
def client(front: Server, infer_key: tuple[str, str]) -> OpenAI:
    return OpenAI(base_url=f"{front.url}/v1", api_key=infer_key[0], max_retries=0, timeout=120)


@pytest.fixture
def direct(server: Server) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=120)


def test_listed_and_chat_matches_the_upstream(client: OpenAI, direct: OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"remote", "remote@production", "remote-embed"} <= ids
    chat = client.chat.completions.create(
        model="remote@production", messages=QUESTION, temperature=0, max_tokens=8
    )  # type: ignore[arg-type]
    same = direct.chat.completions.create(model="smollm2", messages=QUESTION, temperature=0, max_tokens=8)  # type: ignore[arg-type]
    assert chat.choices[0].message.content == same.choices[0].message.content
    assert "Paris" in (chat.choices[0].message.content or "")
    assert chat.model == "remote@production" and chat.id.startswith("chatcmpl-") and chat.id != same.id
    assert chat.usage is not None and chat.usage.total_tokens == same.usage.total_tokens  # type: ignore[union-attr]


def test_streaming_is_relayed_with_our_naming_and_usage(client: OpenAI) -> None:
    whole = client.chat.completions.create(model="remote", messages=QUESTION, temperature=0, max_tokens=8)  # type: ignore[arg-type]
    chunks = list(
        client.chat.completions.create(
            model="remote",
            messages=QUESTION,  # type: ignore[arg-type]
            temperature=0,
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == whole.choices[0].message.content
    )
    assert {c.model for c in chunks} == {"remote"} and len({c.id for c in chunks}) == 1
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == whole.usage.total_tokens  # type: ignore[union-attr]
    plain = list(
        client.completions.create(model="remote", prompt="Once upon a time", max_tokens=4, stream=True)
    )
    assert plain and all(c.usage is None for c in plain)  # no usage chunk unless asked for
    assert "".join(c.choices[0].text for c in plain if c.choices)


def test_embeddings_match_the_upstream(client: OpenAI, direct: OpenAI) -> None:
    ours = client.embeddings.create(model="remote-embed", input=["a cat", "a dog"])
    theirs = direct.embeddings.create(model="minilm", input=["a cat", "a dog"])
    assert ours.model == "remote-embed"
    assert [d.embedding for d in ours.data] == [d.embedding for d in theirs.data]
    with pytest.raises(openai.BadRequestError, match="embeddings capability"):
        client.embeddings.create(model="remote", input="x")


def test_scope_denial(front: Server) -> None:
    other = OpenAI(base_url=f"{front.url}/v1", api_key=_key(front, "infer:iris")[0], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        other.chat.completions.create(model="remote", messages=QUESTION, max_tokens=2)  # type: ignore[arg-type]


def test_upstream_errors(client: OpenAI, front: Server) -> None:
    with pytest.raises(openai.APIStatusError) as down:
        client.chat.completions.create(model="remote-down", messages=QUESTION, max_tokens=2)  # type: ignore[arg-type]
    assert down.value.status_code == 502 and "cannot be reached" in down.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model="remote",
            messages=QUESTION,  # type: ignore[arg-type]
            max_tokens=2,
            logit_bias={"99999999": 1},
        )
    assert "upstream: logit_bias" in bad.value.message
    assert bad.value.body["param"] == "logit_bias"  # type: ignore[index]
    metrics = httpx.get(f"{front.url}/metrics").text
    assert 'model="remote-down",protocol="openai",status="502",version="1"' in metrics


def test_usage_is_metered_on_the_key(client: OpenAI, front: Server, infer_key: tuple[str, str]) -> None:
    chat = client.chat.completions.create(model="remote", messages=QUESTION, temperature=0, max_tokens=3)  # type: ignore[arg-type]
    assert chat.usage is not None
    r = httpx.get(
        f"{front.url}/api/v1/usage",
        params={"key_id": infer_key[1], "model": "remote"},
        headers={"Authorization": f"Bearer {front.admin_key}"},
    )
    records = r.json()
    assert records and sum(x["output_tokens"] for x in records) >= chat.usage.completion_tokens
    assert sum(x["input_tokens"] for x in records) >= chat.usage.prompt_tokens > 0


def _running(server: Server) -> float:
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if (
            line.startswith("modelhost_llm_sequences{")
            and 'model="smollm2"' in line
            and 'state="running"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_client_disconnect_cancels_the_upstream_generation(
    front: Server, server: Server, infer_key: tuple[str, str]
) -> None:
    body = {
        "model": "remote",
        "messages": QUESTION,
        "max_tokens": 1500,
        "ignore_eos": True,
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {infer_key[0]}"}
    with httpx.stream(
        "POST", f"{front.url}/v1/chat/completions", json=body, headers=headers, timeout=60
    ) as r:
        assert r.status_code == 200
        data = (x for x in r.iter_lines() if x.startswith("data:"))
        first = [next(data) for _ in range(3)]
        assert len(first) == 3 and all('"delta"' in line for line in first), first
        assert _running(server) >= 1, httpx.get(f"{server.url}/metrics").text[-3000:]
    _wait_idle(server)


def _wait_idle(server: Server) -> None:
    deadline = time.monotonic() + 20  # 1,500 tokens take far longer than this on 2 cores
    while _running(server) > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _running(server) == 0


def test_client_disconnect_cancels_a_non_streamed_upstream_request(
    front: Server, server: Server, infer_key: tuple[str, str]
) -> None:
    body = {"model": "remote", "messages": QUESTION, "max_tokens": 1500, "ignore_eos": True}
    headers = {"Authorization": f"Bearer {infer_key[0]}"}

    async def abandon() -> None:
        async with httpx.AsyncClient(timeout=120) as client:
            request = asyncio.create_task(
                client.post(f"{front.url}/v1/chat/completions", json=body, headers=headers)
            )
            deadline = time.monotonic() + 60
            while await asyncio.to_thread(_running, server) < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert await asyncio.to_thread(_running, server) >= 1  # the upstream is generating
            request.cancel()  # the client gives up: its connection to the front closes
            with pytest.raises(asyncio.CancelledError):
                await request

    asyncio.run(abandon())
    _wait_idle(server)
