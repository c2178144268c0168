"""The e2e tier: starts the real ``modelhost`` CLI (``modelhost demo --serve``, as ``make demo`` does)
on free HTTP and gRPC ports with a temporary home, and talks to it over both."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.services.ports import free_port


def modelhost_cmd() -> list[str]:
    script = Path(sys.executable).parent / "modelhost"
    return [str(script)] if script.exists() else [sys.executable, "-m", "modelhost.cli"]


@dataclass
class Server:
    url: str
    port: int
    grpc_port: int
    home: Path
    env: dict[str, str]
    admin_key: str = ""
    proc: subprocess.Popen[bytes] | None = None


@contextmanager
def run_server(home: Path, command: str = "demo", **extra_env: str) -> Iterator[Server]:
    """Run ``modelhost demo --serve`` (or ``modelhost serve``) with its own home on free ports until the
    block ends."""
    port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "MODELHOST_HOME": str(home),
        "MODELHOST_PORT": str(port),
        "MODELHOST_GRPC_PORT": str(grpc_port),
        "MODELHOST_RESOLVE_CACHE_S": "0",
        # The demo's GGUF is converted once per sha256; sharing that cache between runs is safe.
        "MODELHOST_CACHE_DIR": str(Path(tempfile.gettempdir()) / "modelhost-test-cache"),
        **extra_env,
    }
    args = ["demo", "--serve"] if command == "demo" else ["serve"]
    log = open(home / "server.log", "a")  # noqa: SIM115 - closed below; appends across restarts
    proc = subprocess.Popen([*modelhost_cmd(), *args], env=env, stdout=log, stderr=subprocess.STDOUT)
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
        # the first start creates an admin key and prints it once (to the terminal, here the log);
        # a restart on the same home prints none, so the log holds exactly one
        keys = re.findall(r"mh_live_[0-9a-f]{12}_[A-Za-z0-9_-]+", (home / "server.log").read_text())
        assert len(keys) == 1, "the first start must print exactly one admin key"
        yield Server(
            url=url, port=port, grpc_port=grpc_port, home=home, env=env, proc=proc, admin_key=keys[0]
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("e2e-home")) as running:
        yield running
