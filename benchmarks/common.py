"""Shared plumbing for the benchmark drivers: free ports, servers in their own process groups, the load
generator, medians. Standard library only, so a driver runs under any Python 3.11."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENVS = HERE / ".venvs"
RUNS = HERE / ".runs"
# The project's venv; else the interpreter running the benchmark (e.g. a venv shared between worktrees).
MODELHOST_BIN = ROOT / ".venv" / "bin" if (ROOT / ".venv").exists() else Path(sys.executable).parent


def venv_bin(peer: str, exe: str = "python") -> str:
    return str(VENVS / peer / "bin" / exe)


def temp_home(prefix: str = "modelhost-bench-") -> Path:
    """A fresh MODELHOST_HOME, removed when the benchmark exits (a task registry holds ~300 MB of
    model copies; thirty runs once filled /tmp). Registered before any server is started, so the
    servers' own exit handlers, run first, have stopped them when it goes."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_venvs(peers: Sequence[str]) -> list[str]:
    """Create missing peer venvs; return the peers whose venv could not be installed."""
    missing = [p for p in peers if not (VENVS / p / ".installed").exists()]
    if missing:
        subprocess.run(["bash", str(HERE / "setup_peers.sh"), *missing], check=False)
    return [p for p in peers if not (VENVS / p / ".installed").exists()]


def pip_version(peer: str, package: str) -> str:
    out = subprocess.run(
        [venv_bin(peer), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or "?"


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"nproc={os.cpu_count()}, CPU {cpu}, Python {platform.python_version()}, load avg {load}"


@dataclass
class Server:
    """A server under test: started in its own session so stopping it ends all its children."""

    name: str
    cmd: list[str]
    url: str  # the inference URL
    body: bytes  # the request body for one single-row request
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    # builds the same server on a fresh port: a port picked free can be taken before the server binds it
    remake: Callable[[], Server] | None = None

    def start(self, logdir: Path) -> None:
        self.log = logdir / f"{self.name}.log"
        env = {**os.environ, **self.env}
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                self.cmd, cwd=self.cwd, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until the server answers a real inference request with 200."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log}")
            try:
                req = urllib.request.Request(
                    self.url, data=self.body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(req, timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                last = repr(exc)
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s ({last}); see {self.log}")

    def ensure_alive(self, logdir: Path) -> bool:
        """Restart the server if it died (on a shared machine a stray kill can hit it); True if it had."""
        if self.proc is not None and self.proc.poll() is None:
            return False
        print(f"!! {self.name} had exited ({self.proc.returncode if self.proc else '?'}); restarting it",
              file=sys.stderr, flush=True)  # fmt: skip
        self.start(logdir)
        self.wait_ready()
        return True

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


@contextlib.contextmanager
def running(servers: Sequence[Server], logdir: Path) -> Iterator[list[Server]]:
    """Start every server, yield those that became ready (the others are reported and stopped)."""
    up: list[Server] = []
    started = list(servers)
    try:
        for s in started:
            s.start(logdir)
        for s in list(started):
            for attempt in range(2):
                try:
                    s.wait_ready()
                    up.append(s)
                    break
                except RuntimeError as exc:
                    print(f"!! {exc}", file=sys.stderr)
                    s.stop()
                    if attempt or s.remake is None:
                        break
                    s = s.remake()
                    started.append(s)
                    s.start(logdir)
        yield up
    finally:
        for s in started:
            s.stop()


def default_loadgen() -> str:
    """``wrk`` (C, from apt: ``apt-get install wrk``) when installed, else the Python aiohttp client."""
    return "wrk" if shutil.which("wrk") else "python"


def load(
    url: str,
    body: bytes,
    logdir: Path,
    *,
    clients: int,
    seconds: float,
    warmup: float,
    tool: str | None = None,
) -> dict:
    """Drive URL with CLIENTS closed-loop keep-alive clients POSTing BODY; returns requests, errors,
    rps, p50_ms, p99_ms. ``tool`` is ``wrk`` or ``python`` (loadgen.py in the loadgen venv); the
    load generator shares the machine with the servers, so every server of a run gets the same one."""
    body_file = logdir / f"body-{abs(hash(body))}.json"
    body_file.write_bytes(body)
    if (tool or default_loadgen()) == "wrk":
        return _wrk(url, body_file, clients=clients, seconds=seconds, warmup=warmup)
    out = subprocess.run(
        [
            venv_bin("loadgen"),
            str(HERE / "loadgen.py"),
            url,
            str(body_file),
            "--clients",
            str(clients),
            "--seconds",
            str(seconds),
            "--warmup",
            str(warmup),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + warmup + 120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout))


def _wrk(url: str, body_file: Path, *, clients: int, seconds: float, warmup: float) -> dict:
    """wrk with one thread (a C event loop: far less CPU per request than a Python client) and
    CLIENTS connections; a separate warm-up run first, since wrk has no warm-up of its own."""

    def run(duration: float) -> dict:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{clients}", f"-d{max(duration, 1.0):g}s", "--timeout", "30s",
             "-s", str(HERE / "wrk_post.lua"), url],
            capture_output=True, text=True, timeout=duration + 120,
            env={**os.environ, "WRK_BODY_FILE": str(body_file)},
        )  # fmt: skip
        line = next((x for x in out.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
        if out.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed: {out.stdout[-1000:]} {out.stderr[-1000:]}")
        return dict(json.loads(line.removeprefix("WRK_JSON ")))

    if warmup > 0:
        run(warmup)
    res = run(seconds)
    ok = res["requests"] - res["errors"]
    return {
        "requests": ok,
        "errors": res["errors"],
        "error_samples": [],
        "rps": ok / res["seconds"],
        "p50_ms": res["p50_ms"],
        "p99_ms": res["p99_ms"],
    }


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def run_dir(kind: str) -> Path:
    d = RUNS / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    d.mkdir(parents=True, exist_ok=True)
    return d
