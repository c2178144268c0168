"""Image classification over OIP v2: EfficientNet-Lite0 on scikit-learn's sample photos."""

from __future__ import annotations

import base64
import io
import struct

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image
from sklearn.datasets import load_sample_image


def _jpeg(name: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(load_sample_image(name)).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_top5_contains_the_expected_classes_json_base64(task_client: TestClient) -> None:
    images = [base64.b64encode(_jpeg(n)).decode() for n in ("china.jpg", "flower.jpg")]
    r = task_client.post(
        "/v2/models/efficientnet/infer",
        json={"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": images}]},
    )
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["label"]["shape"] == [2, 5] and out["score"]["shape"] == [2, 5]
    china, flower = out["label"]["data"][:5], out["label"]["data"][5:]
    assert {"palace", "bell tower", "monastery", "pagoda"} & set(china)
    assert "daisy" in flower
    scores = np.array(out["score"]["data"]).reshape(2, 5)
    assert np.all(np.diff(scores, axis=1) <= 0) and np.all(scores.sum(axis=1) <= 1.0001)


def test_binary_extension_raw_bytes(task_client: TestClient) -> None:
    raw = _jpeg("flower.jpg")
    payload = struct.pack("<I", len(raw)) + raw
    header = (
        b'{"inputs":[{"name":"image","datatype":"BYTES","shape":[1],'
        b'"parameters":{"binary_data_size":' + str(len(payload)).encode() + b"}}]}"
    )
    r = task_client.post(
        "/v2/models/efficientnet/infer",
        content=header + payload,
        headers={
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header)),
        },
    )
    assert r.status_code == 200, r.text
    labels = next(o for o in r.json()["outputs"] if o["name"] == "label")["data"]
    assert "daisy" in labels


def test_undecodable_image_is_a_400(task_client: TestClient) -> None:
    junk = base64.b64encode(b"\x89PNG but not really").decode()
    r = task_client.post(
        "/v2/models/efficientnet/infer",
        json={"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [junk]}]},
    )
    assert r.status_code == 400
    assert "could not be decoded as an image" in r.json()["error"]


def test_concurrent_image_requests_are_batched_across_requests(task_client: TestClient) -> None:
    """The adaptive batcher serves task models too: concurrent single-image OIP requests share forwards."""
    import threading

    image = base64.b64encode(_jpeg("flower.jpg")).decode()
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [image]}]}
    entry = next(e for e in task_client.app.state.plane.repository.loaded() if e.info.model == "efficientnet")  # type: ignore[attr-defined]
    assert entry.batcher is not None and entry.batcher.max_batch_size == 4  # the runtime's cap
    before = (entry.batcher.stats.requests, entry.batcher.stats.batches)
    labels: list[str] = []

    def call() -> None:
        r = task_client.post("/v2/models/efficientnet/infer", json=body)
        assert r.status_code == 200, r.text
        labels.append(next(o for o in r.json()["outputs"] if o["name"] == "top_label")["data"][0])

    threads = [threading.Thread(target=call) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    requests = entry.batcher.stats.requests - before[0]
    batches = entry.batcher.stats.batches - before[1]
    assert labels == ["daisy"] * 12
    assert requests == 12 and batches < requests  # several requests shared one forward


def test_images_are_decoded_per_request_before_the_batch(task_client: TestClient) -> None:
    """``prepare`` decodes each request's images on its own thread: a batch holds only pixels (the
    forward pass), and a corrupt image fails its own request before it can join (and split) a batch."""
    import threading

    from modelhost.runtimes.vision import PIXELS

    plane = task_client.app.state.plane  # type: ignore[attr-defined]
    entry = next(e for e in plane.repository.loaded() if e.info.model == "efficientnet")
    runtime = entry.runtime
    raw = _jpeg("china.jpg")
    prepared = runtime.prepare({"image": np.array([raw], dtype=object)})
    assert set(prepared) == {PIXELS} and prepared[PIXELS].shape == (1, 3, 224, 224)
    direct = runtime.predict({"image": np.array([raw], dtype=object)}, ["label"])["label"]
    assert (runtime.predict(prepared, ["label"])["label"] == direct).all()

    good = {
        "inputs": [
            {"name": "image", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(raw).decode()]}
        ]
    }
    bad = {
        "inputs": [
            {
                "name": "image",
                "datatype": "BYTES",
                "shape": [1],
                "data": [base64.b64encode(b"GIF89a junk").decode()],
            }
        ]
    }
    isolated = entry.batcher.stats.isolated_failures
    status: list[int] = []

    def call(body: dict[str, object]) -> None:
        status.append(task_client.post("/v2/models/efficientnet/infer", json=body).status_code)

    threads = [threading.Thread(target=call, args=(bad if i == 3 else good,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(status) == [200] * 7 + [400]
    assert entry.batcher.stats.isolated_failures == isolated  # no batch failed because of the bad image
