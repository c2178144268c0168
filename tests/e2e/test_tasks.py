"""The task models of ``modelhost demo --serve`` through the real server: the openai SDK for speech,
httpx for translation, tritonclient (binary BYTES) for images and the speech-pt graph."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest

from .conftest import Server

pytestmark = pytest.mark.e2e
BECKETT = Path(__file__).parent.parent / "data" / "beckett.wav"


def test_transcription_with_the_openai_sdk(server: Server) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    with open(BECKETT, "rb") as f:
        text = client.audio.transcriptions.create(model="whisper@production", file=f, response_format="text")
    assert "fail better" in str(text).lower()


def test_translation_over_http(server: Server) -> None:
    r = httpx.post(
        f"{server.url}/v1/translations",
        json={"model": "translate", "source": "en", "target": "pt", "text": ["Where is the train station?"]},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert "estação" in r.json()["data"][0]["text"]


def test_image_and_graph_with_tritonclient_binary_bytes(server: Server) -> None:
    import tritonclient.http as triton
    from PIL import Image
    from sklearn.datasets import load_sample_image

    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}", network_timeout=120)
    buf = io.BytesIO()
    Image.fromarray(load_sample_image("flower.jpg")).save(buf, format="JPEG")
    image = triton.InferInput("image", [1], "BYTES")
    image.set_data_from_numpy(np.array([buf.getvalue()], dtype=object), binary_data=True)
    result = client.infer(
        "efficientnet", [image], outputs=[triton.InferRequestedOutput("label", binary_data=False)]
    )
    assert "daisy" in [
        x.decode() if isinstance(x, bytes) else x for x in result.as_numpy("label").reshape(-1)
    ]

    audio = triton.InferInput("audio", [1], "BYTES")
    audio.set_data_from_numpy(np.array([BECKETT.read_bytes()], dtype=object), binary_data=True)
    result = client.infer("speech-pt@production", [audio])
    transcript = result.as_numpy("transcript").reshape(-1)[0]
    assert b"fail better" in (transcript if isinstance(transcript, bytes) else transcript.encode()).lower()
    steps = result.get_response()["parameters"]["steps"]
    assert [s["step"] for s in steps] == ["transcribe", "translate"]
