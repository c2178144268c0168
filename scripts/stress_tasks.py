"""Stress the task models of a real server (loopback only, bounded): each round sends, at once, two
Whisper transcriptions, one ``speech-pt`` graph request (Whisper → Bergamot), two translations, one
image classification and one embeddings request, checks every answer, and checks the server process
is still alive. It stops at the first crash and prints the end of the server log (``modelhost serve``
enables faulthandler, so a native crash leaves the Python stacks of every thread there).

    python scripts/stress_tasks.py [--rounds 300] [--max-seconds 1200] [--command demo|serve]

``--command demo`` (default) runs ``modelhost demo --serve`` as the e2e tier does (SmolLM2 and MiniLM
loaded too, so torch's thread pools share the process with CTranslate2's); ``serve`` registers the
task models only. Exit status 0: no crash in the rounds run; 1: the server died (log tail printed).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import free_port  # noqa: E402
from tasks import BECKETT, clip, jpeg  # noqa: E402  (the task benchmark's inputs)

SENTENCES = ["Where is the train station?", "The cat is on the table.", "I like to read books."]


def start_server(home: Path, command: str, extra_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "MODELHOST_HOME": str(home),
        "MODELHOST_PORT": str(port),
        "MODELHOST_GRPC_PORT": "0",
        "MODELHOST_CACHE_DIR": str(Path(tempfile.gettempdir()) / "modelhost-test-cache"),
        **extra_env,
    }
    if command == "serve":
        from modelhost.config import Settings
        from modelhost.demo_tasks import register_demo_tasks
        from modelhost.registry import Registry

        registry = Registry(Settings(home=home))
        register_demo_tasks(registry)
        registry.close()
        args = ["serve", "--load"]
    else:
        args = ["demo", "--serve"]
    log = open(home / "server.log", "ab")  # noqa: SIM115 - the child process keeps it
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelhost.cli", *args], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} at start:\n{log_tail(home)}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"server not ready in 300 s:\n{log_tail(home)}")
        time.sleep(0.3)


def log_tail(home: Path, lines: int = 120) -> str:
    text = (home / "server.log").read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


async def one_round(client: httpx.AsyncClient, i: int, data: dict[str, Any], with_embeddings: bool) -> None:
    async def transcribe(audio: bytes) -> None:
        r = await client.post(
            "/v1/audio/transcriptions",
            files={"file": ("a.wav", audio, "audio/wav")},
            data={"model": "whisper"},
        )
        r.raise_for_status()
        assert "tried" in r.json()["text"].lower(), r.text

    async def graph() -> None:
        body = {"inputs": [{"name": "audio", "datatype": "BYTES", "shape": [1], "data": [data["full_b64"]]}]}
        r = await client.post("/v2/models/speech-pt/infer", json=body)
        r.raise_for_status()
        assert "fail better" in r.json()["outputs"][0]["data"][0].lower(), r.text

    async def translate(k: int) -> None:
        text = SENTENCES[(i + k) % len(SENTENCES)]
        r = await client.post(
            "/v1/translations", json={"model": "translate", "source": "en", "target": "pt", "text": [text]}
        )
        r.raise_for_status()
        assert r.json()["data"][0]["text"], r.text

    async def image() -> None:
        body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [data["image_b64"]]}]}
        r = await client.post("/v2/models/efficientnet/infer", json=body)
        r.raise_for_status()
        assert "daisy" in r.json()["outputs"][0]["data"], r.text

    async def embed() -> None:
        r = await client.post("/v1/embeddings", json={"model": "minilm", "input": [SENTENCES[i % 3]]})
        r.raise_for_status()
        assert len(r.json()["data"][0]["embedding"]) == 384, r.text

    calls = [
        transcribe(data["short"]),
        transcribe(data["short"]),
        graph(),
        translate(0),
        translate(1),
        image(),
    ]
    if with_embeddings:
        calls.append(embed())
    await asyncio.gather(*calls)


async def stress(url: str, proc: subprocess.Popen[bytes], args: argparse.Namespace) -> tuple[int, str]:
    full = BECKETT.read_bytes()
    data = {
        "short": clip(args.clip_seconds),
        "full_b64": base64.b64encode(full).decode(),
        "image_b64": base64.b64encode(jpeg("flower.jpg")).decode(),
    }
    started = time.monotonic()
    done = 0
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        while done < args.rounds and time.monotonic() - started < args.max_seconds:
            try:
                await one_round(client, done, data, args.command == "demo")
            except httpx.TransportError as exc:
                await asyncio.sleep(0.5)
                if proc.poll() is not None:
                    return done, f"server died (exit {proc.returncode}) in round {done + 1}: {exc!r}"
                raise
            done += 1
            if proc.poll() is not None:
                return done, f"server died (exit {proc.returncode}) after round {done}"
            if done % 10 == 0:
                print(f"  {done} rounds, {time.monotonic() - started:.0f} s", flush=True)
    return done, ""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--max-seconds", type=float, default=1200)
    parser.add_argument("--clip-seconds", type=float, default=3.0, help="length of the transcribed clips")
    parser.add_argument("--command", choices=["demo", "serve"], default="demo")
    parser.add_argument("--env", action="append", default=[], help="extra server env KEY=VALUE")
    args = parser.parse_args()
    extra = dict(e.split("=", 1) for e in args.env)
    home = Path(tempfile.mkdtemp(prefix="modelhost-stress-"))
    print(f"home {home}; starting `modelhost {args.command}` …", flush=True)
    proc, url = start_server(home, args.command, extra)
    started = time.monotonic()
    try:
        done, crash = asyncio.run(stress(url, proc, args))
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
    took = time.monotonic() - started
    if crash:
        print(f"CRASH: {crash}; {took:.0f} s\n--- server log (tail) ---\n{log_tail(home)}")
        raise SystemExit(1)
    print(f"no crash: {done} rounds ({done * 7} requests, {done} graph requests) in {took:.0f} s")


if __name__ == "__main__":
    main()
