"""A registered model graph: speech -> transcript -> Portuguese translation, served over OIP v2."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modelhost.registry import Registry

BECKETT = Path(__file__).parent.parent / "data" / "beckett.wav"


@pytest.fixture(scope="module")
def speech_graph(task_registry: Registry) -> str:
    """The demo's graph (modelhost.demo_tasks.speech_graph), registered from its JSON file."""
    info = task_registry.resolve("speech-pt@production")
    assert info.runtime == "graph" and info.format == "graph"
    assert [(s["model"], s["version"]) for s in info.signature.extra["steps"]] == [
        ("whisper", 1),
        ("translate", 1),
    ]
    return "speech-pt"


def test_graph_returns_each_steps_output_and_latency(task_client: TestClient, speech_graph: str) -> None:
    audio = base64.b64encode(BECKETT.read_bytes()).decode()
    r = task_client.post(
        f"/v2/models/{speech_graph}/infer",
        json={"inputs": [{"name": "audio", "datatype": "BYTES", "shape": [1], "data": [audio]}]},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    out = {o["name"]: o["data"][0] for o in body["outputs"]}
    assert "fail better" in out["transcript"].lower()
    assert "tente novamente" in out["portuguese"].lower()  # "try again"
    steps = body["parameters"]["steps"]
    assert [(s["step"], s["model"], s["version"]) for s in steps] == [
        ("transcribe", "whisper", 1),
        ("translate", "translate", 1),
    ]
    assert all(s["latency_ms"] > 0 for s in steps)
    assert body["parameters"]["latency_ms"] >= sum(s["latency_ms"] for s in steps)


def test_graph_steps_are_timed_in_prometheus(task_client: TestClient, speech_graph: str) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def step_counts() -> dict[tuple[str, str, str, str], float]:
        families = text_string_to_metric_families(task_client.get("/metrics").text)
        family = next(f for f in families if f.name == "modelhost_graph_step_duration_seconds")
        return {
            (s.labels["graph"], s.labels["step"], s.labels["model"], s.labels["version"]): s.value
            for s in family.samples
            if s.name.endswith("_count")
        }

    before = step_counts()
    audio = base64.b64encode(BECKETT.read_bytes()).decode()
    r = task_client.post(
        f"/v2/models/{speech_graph}/infer",
        json={"inputs": [{"name": "audio", "datatype": "BYTES", "shape": [1], "data": [audio]}]},
    )
    assert r.status_code == 200, r.text
    after = step_counts()
    for key in [("speech-pt", "transcribe", "whisper", "1"), ("speech-pt", "translate", "translate", "1")]:
        assert after[key] == before.get(key, 0) + 1, key
    # the per-step latency stays in the response too
    assert [s["step"] for s in r.json()["parameters"]["steps"]] == ["transcribe", "translate"]


def test_graph_metadata_lists_its_pinned_steps(task_client: TestClient, speech_graph: str) -> None:
    meta = task_client.get(f"/v2/models/{speech_graph}").json()
    assert meta["platform"] == "modelhost_graph"
    assert [i["name"] for i in meta["inputs"]] == ["audio"]
    assert {o["name"] for o in meta["outputs"]} == {"transcript", "portuguese"}


def test_a_failing_step_is_named_in_the_400(task_client: TestClient, speech_graph: str) -> None:
    r = task_client.post(
        f"/v2/models/{speech_graph}/infer",
        json={"inputs": [{"name": "audio", "datatype": "BYTES", "shape": [1], "data": ["bm90IGF1ZGlv"]}]},
    )
    assert r.status_code == 400
    assert "graph step 'transcribe'" in r.json()["error"]


def test_image_plus_text_graph(task_client: TestClient, task_registry: Registry, tmp_path: Path) -> None:
    """A multimodal request: an image's best label and a caption, both translated to Portuguese."""
    import io
    import json

    from PIL import Image
    from sklearn.datasets import load_sample_image

    graph = {
        "inputs": [
            {"name": "image", "datatype": "BYTES", "shape": [-1]},
            {"name": "caption", "datatype": "BYTES", "shape": [-1]},
        ],
        "steps": [
            {"name": "classify", "model": "efficientnet", "version": 1, "inputs": {"image": "$image"}},
            {
                "name": "label_pt",
                "model": "translate",
                "version": 1,
                "inputs": {"text": "classify.top_label"},
            },
            {"name": "caption_pt", "model": "translate", "version": 1, "inputs": {"text": "$caption"}},
        ],
        "outputs": {
            "label": "classify.top_label",
            "label_pt": "label_pt.translation",
            "caption_pt": "caption_pt.translation",
        },
    }
    path = tmp_path / "image-caption.json"
    path.write_text(json.dumps(graph))
    task_registry.register_version("image-caption-pt", path)
    buf = io.BytesIO()
    Image.fromarray(load_sample_image("flower.jpg")).save(buf, format="JPEG")
    r = task_client.post(
        "/v2/models/image-caption-pt/infer",
        json={
            "inputs": [
                {
                    "name": "image",
                    "datatype": "BYTES",
                    "shape": [1],
                    "data": [base64.b64encode(buf.getvalue()).decode()],
                },
                {"name": "caption", "datatype": "BYTES", "shape": [1], "data": ["A flower in the garden."]},
            ]
        },
    )
    assert r.status_code == 200, r.text
    out = {o["name"]: o["data"][0] for o in r.json()["outputs"]}
    assert out["label"] == "daisy"
    assert out["label_pt"].strip()
    assert "flor" in out["caption_pt"].lower() and "jardim" in out["caption_pt"].lower()
    assert [s["step"] for s in r.json()["parameters"]["steps"]] == ["classify", "label_pt", "caption_pt"]


def test_a_graph_calling_itself_is_a_400_not_a_crash(
    task_client: TestClient, task_registry: Registry, tmp_path: Path
) -> None:
    import json

    loop = {
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
        "steps": [{"name": "again", "model": "loop", "version": 1, "inputs": {"text": "$text"}}],
        "outputs": {"out": "again.out"},
    }
    path = tmp_path / "loop.json"
    path.write_text(json.dumps(loop))
    task_registry.register_version("loop", path)
    r = task_client.post(
        "/v2/models/loop/infer",
        json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["x"]}]},
    )
    assert r.status_code == 400
    assert "nest more than" in r.json()["error"]


def test_a_missing_step_version_is_a_404_naming_the_step(
    task_client: TestClient, task_registry: Registry, tmp_path: Path
) -> None:
    import json

    graph = {
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
        "steps": [{"name": "tr", "model": "translate", "version": 99, "inputs": {"text": "$text"}}],
        "outputs": {"out": "tr.translation"},
    }
    path = tmp_path / "missing.json"
    path.write_text(json.dumps(graph))
    task_registry.register_version("missing-step", path)
    r = task_client.post(
        "/v2/models/missing-step/infer",
        json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["x"]}]},
    )
    assert r.status_code == 404
    assert r.json()["error"].startswith("graph step 'tr' (translate v99):")
