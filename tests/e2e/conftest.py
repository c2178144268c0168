"""The e2e tier: starts the real ``modelhost`` CLI (``modelhost demo --serve``, as ``make demo`` does)
on a free port with a temporary home, and talks to it over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ADMIN_TOKEN = "e2e-" + os.urandom(8).hex()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def modelhost_cmd() -> list[str]:
    script = Path(sys.executable).parent / "modelhost"
    return [str(script)] if script.exists() else [sys.executable, "-m", "modelhost.cli"]


@dataclass
class Server:
    url: str
    port: int
    home: Path
    env: dict[str, str]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("e2e-home")
    port = free_port()
    env = {
        **os.environ,
        "MODELHOST_HOME": str(home),
        "MODELHOST_PORT": str(port),
        "MODELHOST_ADMIN_TOKEN": ADMIN_TOKEN,
        "MODELHOST_RESOLVE_CACHE_S": "0",
        # The demo's GGUF is converted once per sha256; sharing that cache between runs is safe.
        "MODELHOST_CACHE_DIR": str(Path(tempfile.gettempdir()) / "modelhost-test-cache"),
    }
    log = open(home / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*modelhost_cmd(), "demo", "--serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # the demo also registers and loads SmolLM2 and MiniLM
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {proc.returncode}: {(home / 'server.log').read_text()}"
                )
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready in 300 s: {(home / 'server.log').read_text()}")
            time.sleep(0.2)
        yield Server(url=url, port=port, home=home, env=env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
