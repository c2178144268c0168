"""/v1/audio/transcriptions and OIP v2 speech recognition on real speech (beckett.wav, 16 kHz)."""

from __future__ import annotations

import base64
import io
import wave
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

BECKETT = Path(__file__).parent.parent / "data" / "beckett.wav"


def _transcribe(client: TestClient, data: bytes, **fields: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/audio/transcriptions",
        files={"file": ("speech.wav", data, "audio/wav")},
        data={"model": "whisper", **fields},
    )


def test_transcription_json_contains_the_quote(task_client: TestClient) -> None:
    r = _transcribe(task_client, BECKETT.read_bytes())
    assert r.status_code == 200, r.text
    assert "fail better" in r.json()["text"].lower()


def test_verbose_json_has_timed_segments_and_text_format_is_plain(task_client: TestClient) -> None:
    body = _transcribe(task_client, BECKETT.read_bytes(), response_format="verbose_json").json()
    assert body["language"] == "en" and 9.5 < body["duration"] < 10.5
    segments = body["segments"]
    assert segments and all(s["start"] < s["end"] for s in segments)
    assert segments[-1]["end"] <= body["duration"] + 0.5
    assert " ".join(s["text"] for s in segments) == body["text"]
    r = _transcribe(task_client, BECKETT.read_bytes(), response_format="text")
    assert r.headers["content-type"].startswith("text/plain")
    assert "fail better" in r.text.lower()


def test_other_sample_rates_are_resampled(task_client: TestClient) -> None:
    with wave.open(str(BECKETT)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    # 16 kHz -> 8 kHz by dropping every other sample (speech stays below 4 kHz enough to be heard)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(samples[::2].tobytes())
    r = _transcribe(task_client, buf.getvalue())
    assert r.status_code == 200, r.text
    assert "fail" in r.json()["text"].lower()


def test_bad_audio_is_a_400_in_openai_shape(task_client: TestClient) -> None:
    r = _transcribe(task_client, b"this is not audio at all")
    assert r.status_code == 400
    assert "could not be decoded as audio" in r.json()["error"]["message"]
    r = _transcribe(task_client, b"")
    assert r.status_code == 400 and r.json()["error"]["param"] == "file"
    r = _transcribe(task_client, BECKETT.read_bytes(), response_format="srt")
    assert r.status_code == 400 and "response_format" in r.json()["error"]["message"]
    r = _transcribe(task_client, BECKETT.read_bytes(), language="de")
    assert r.status_code == 400 and "English-only" in r.json()["error"]["message"]
    r = task_client.post(
        "/v1/audio/transcriptions",
        files={"file": ("a.wav", BECKETT.read_bytes(), "audio/wav")},
        data={"model": "translate"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"


def test_oip_v2_speech_with_base64_bytes(task_client: TestClient) -> None:
    audio = base64.b64encode(BECKETT.read_bytes()).decode()
    r = task_client.post(
        "/v2/models/whisper/infer",
        json={"inputs": [{"name": "audio", "datatype": "BYTES", "shape": [1], "data": [audio]}]},
    )
    assert r.status_code == 200, r.text
    assert "fail better" in r.json()["outputs"][0]["data"][0].lower()
    r = task_client.post(
        "/v2/models/whisper/infer",
        json={"inputs": [{"name": "audio", "datatype": "BYTES", "shape": [1], "data": ["not base64!"]}]},
    )
    assert r.status_code == 400 and "base64" in r.json()["error"]


def test_official_openai_sdk_transcribes(task_client: TestClient) -> None:
    from openai import OpenAI

    client = OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=task_client)
    with open(BECKETT, "rb") as f:
        result = client.audio.transcriptions.create(model="whisper", file=f, response_format="verbose_json")
    assert "fail better" in result.text.lower()
    assert result.segments and result.segments[-1].text.strip().lower().startswith("fail better")


def test_oversize_upload_is_a_413_in_openai_shape(task_registry) -> None:  # type: ignore[no-untyped-def]
    from modelhost.serving.app import create_app

    settings = task_registry.settings.model_copy(update={"max_body_bytes": 10_000, "load_on_start": False})
    with TestClient(create_app(settings, registry=task_registry)) as client:
        r = _transcribe(client, BECKETT.read_bytes())
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


def _wav(samples: np.ndarray, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def test_several_clips_in_one_request_are_one_batch(task_client: TestClient) -> None:
    with wave.open(str(BECKETT)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    clips = [_wav(samples[: 16000 * 4]), _wav(samples[16000 * 4 :])]
    r = task_client.post(
        "/v2/models/whisper/infer",
        json={
            "inputs": [
                {
                    "name": "audio",
                    "datatype": "BYTES",
                    "shape": [2],
                    "data": [base64.b64encode(c).decode() for c in clips],
                }
            ]
        },
    )
    assert r.status_code == 200, r.text
    first, second = (t.lower() for t in r.json()["outputs"][0]["data"])
    assert "ever tried" in first and "fail better" not in first
    assert "fail better" in second
