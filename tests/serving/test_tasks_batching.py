"""Task routes share the deployment's adaptive batcher: concurrent requests of different clients are
merged into fewer engine calls, answers are scattered back to the right request, and a bad request
fails alone."""

from __future__ import annotations

import io
import threading
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from modelhost.dataplane.repository import LoadedModel

BECKETT = Path(__file__).parent.parent / "data" / "beckett.wav"


def _entry(client: TestClient, model: str) -> LoadedModel:
    plane = client.app.state.plane  # type: ignore[attr-defined]
    return next(e for e in plane.repository.loaded() if e.info.model == model)


def _concurrently(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run each call in its own thread at once; results in call order (exceptions re-raised)."""
    results: list[Any] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # re-raised in the test thread below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def _clip(start_s: float, end_s: float) -> bytes:
    with wave.open(str(BECKETT)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples[int(start_s * 16000) : int(end_s * 16000)].tobytes())
    return buf.getvalue()


def test_concurrent_transcriptions_share_batched_whisper_passes(task_client: TestClient) -> None:
    first, second = _clip(0, 3), _clip(6, 10)  # "Ever tried, ever failed." / "Fail again. Fail better."

    def transcribe(data: bytes) -> Callable[[], Any]:
        return lambda: task_client.post(
            "/v1/audio/transcriptions",
            files={"file": ("a.wav", data, "audio/wav")},
            data={"model": "whisper"},
        )

    transcribe(first)()  # loads the model
    entry = _entry(task_client, "whisper")
    assert entry.batcher is not None
    # no deployment max_batch_size: Whisper's own cap, not the server-wide 32 (a 16-clip CPU batch
    # outlasted the request timeout)
    assert entry.batcher.max_batch_size == 4
    runtime: Any = entry.runtime
    batched_sizes: list[int] = []
    original = runtime.transcribe_batch

    def counting(clips: Any) -> list[str]:
        batched_sizes.append(len(clips))
        return list(original(clips))

    runtime.transcribe_batch = counting
    before = (entry.batcher.stats.requests, entry.batcher.stats.batches)
    try:
        clips = [first, second, first, second]
        responses = _concurrently([transcribe(c) for c in clips])
    finally:
        del runtime.transcribe_batch
    requests = entry.batcher.stats.requests - before[0]
    batches = entry.batcher.stats.batches - before[1]
    for clip, r in zip(clips, responses, strict=True):
        assert r.status_code == 200, r.text
        text = r.json()["text"].lower()
        if clip is first:
            assert "tried" in text and "better" not in text, text
        else:
            assert "better" in text and "tried" not in text, text
    assert requests == len(clips) and batches < requests
    assert batched_sizes and max(batched_sizes) > 1  # several requests in one encoder/decoder pass

    # A bad upload merged with good ones fails alone, as a client error in OpenAI's shape.
    responses = _concurrently([transcribe(c) for c in (second, b"not audio at all", second)])
    assert [r.status_code for r in responses] == [200, 400, 200]
    assert "could not be decoded" in responses[1].json()["error"]["message"]
    assert all("better" in r.json()["text"].lower() for r in (responses[0], responses[2]))


def test_concurrent_translations_share_batches_per_language_pair(task_client: TestClient) -> None:
    def translate(source: str, target: str, text: str) -> Callable[[], Any]:
        body = {"model": "translate", "source": source, "target": target, "text": text}
        return lambda: task_client.post("/v1/translations", json=body)

    jobs = [("en", "pt", f"The cat number {i} is on the table.") for i in range(10)]
    jobs += [("pt", "en", f"O gato número {i} está na mesa.") for i in range(6)]
    expected = []
    for job in jobs:  # one at a time first: the answer each request must get back
        r = translate(*job)()
        assert r.status_code == 200, r.text
        expected.append(r.json()["data"][0]["text"])
    assert len(set(expected)) == len(jobs)
    entry = _entry(task_client, "translate")
    assert entry.batcher is not None
    assert entry.batcher.max_batch_size == 4  # the runtime's cap (no deployment value): no idle engine
    before = (entry.batcher.stats.requests, entry.batcher.stats.batches)
    responses = _concurrently([translate(*job) for job in jobs])
    requests = entry.batcher.stats.requests - before[0]
    batches = entry.batcher.stats.batches - before[1]
    got = [r.json()["data"][0]["text"] for r in responses]
    assert got == expected  # each answer went back to its own request, pairs never mixed
    assert requests == len(jobs) and batches < requests


def test_task_requests_are_counted_with_batch_metrics(task_client: TestClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    body = {"model": "translate", "source": "en", "target": "pt", "text": ["Good morning."]}
    assert task_client.post("/v1/translations", json=body).status_code == 200

    def samples() -> dict[tuple[str, str], float]:
        found: dict[tuple[str, str], float] = {}
        for family in text_string_to_metric_families(task_client.get("/metrics").text):
            for s in family.samples:
                if s.labels.get("model") == "translate" and s.labels.get("protocol", "tasks") == "tasks":
                    found[(s.name, s.labels.get("status", ""))] = s.value
        return found

    before = samples()
    assert task_client.post("/v1/translations", json=body).status_code == 200
    after = samples()
    assert after[("modelhost_batch_size_count", "")] == before[("modelhost_batch_size_count", "")] + 1
    assert after[("modelhost_requests_total", "200")] == before[("modelhost_requests_total", "200")] + 1


def test_a_single_thread_engine_is_always_called_from_its_own_thread(task_client: TestClient) -> None:
    """Bergamot is not thread-safe: task routes and OIP v2 reach it only from the model's thread."""
    body = {"model": "translate", "source": "en", "target": "pt", "text": ["Good evening."]}
    assert task_client.post("/v1/translations", json=body).status_code == 200
    runtime: Any = _entry(task_client, "translate").runtime
    threads: set[str] = set()
    original = runtime.translate

    def recording(*args: Any) -> list[str]:
        threads.add(threading.current_thread().name)
        return list(original(*args))

    runtime.translate = recording
    v2 = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["Good night."]}]}
    try:
        responses = _concurrently(
            [lambda: task_client.post("/v1/translations", json=body)] * 6
            + [lambda: task_client.post("/v2/models/translate/infer", json=v2)] * 2
        )
    finally:
        del runtime.translate
    assert all(r.status_code == 200 for r in responses)
    assert len(threads) == 1 and next(iter(threads)).startswith("modelhost-translate-v1"), threads
