"""Image classification: an ONNX classifier directory (model.onnx, labels.json, preprocess.json)
fed with encoded images (JPEG, PNG, …) as BYTES; answers the top-k labels and scores."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.config import Settings
from modelhost.errors import UnsupportedFormat
from modelhost.registry.formats import IMAGE_CLASSIFIER
from modelhost.runtimes.base import Runtime, Signature, TensorSpec
from modelhost.runtimes.media import decode_image, element_bytes

# Preprocessing when preprocess.json does not say otherwise (ImageNet mean/std at 224 px).
# The hidden input ``prepare`` puts in place of ``image``: preprocessed pixels, batched across requests.
PIXELS = "__pixels__"
DEFAULT_PREPROCESS = {"size": 224, "resize": 256, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def _preprocess_config(path: Path) -> dict[str, Any]:
    conf = dict(DEFAULT_PREPROCESS)
    file = path / "preprocess.json"
    if file.is_file():
        conf.update(json.loads(file.read_text()))
    return conf


def preprocess(image: Any, conf: dict[str, Any]) -> np.ndarray:
    """Resize the short side, centre-crop, scale to [0, 1], normalise; CHW float32."""
    from PIL import Image

    size, resize = int(conf["size"]), int(conf["resize"])
    w, h = image.size
    scale = resize / min(w, h)
    image = image.resize(
        (max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR
    )
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    image = image.crop((left, top, left + size, top + size))
    pixels = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    mean, std = np.asarray(conf["mean"], dtype=np.float32), np.asarray(conf["std"], dtype=np.float32)
    normalised: np.ndarray = (pixels - mean) / std
    return normalised.transpose(2, 0, 1)


class ImageClassifierRuntime(Runtime):
    name = "image-classifier"
    formats = (IMAGE_CLASSIFIER,)
    # Decoding and resizing (≈ 4 ms a JPEG) run per request in parallel threads; a batch holds only
    # the forward pass (with one thread decoding a whole batch, batching was 0.55× of no batching).
    prepares = True
    # Small batches keep a next one forming while one runs (16 clients on 2 cores: 56 req/s at 4 vs
    # 46 at 32; benchmarks/RESULTS.md); a deployment's max_batch_size overrides it.
    default_max_batch_size = 4

    @classmethod
    def inspect(cls, path: Path, settings: Settings) -> Signature:
        labels = json.loads((path / "labels.json").read_text())
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise UnsupportedFormat(f"{path.name}/labels.json must be a JSON list of label strings")
        k = min(settings.task_top_k, len(labels))
        return Signature(
            inputs=(TensorSpec("image", "BYTES", (-1,)),),
            # top_label (one per image) lets a graph feed the best label to a text model.
            outputs=(
                TensorSpec("label", "BYTES", (-1, k)),
                TensorSpec("score", "FP32", (-1, k)),
                TensorSpec("top_label", "BYTES", (-1,)),
            ),
            extra={"kind": "image-classification", "classes": len(labels), "top_k": k},
        )

    def load(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.settings.task_threads
        # No spin-waiting between calls: onnxruntime's intra-op threads otherwise busy-wait after each
        # run, taking the cores the event loop, the HTTP client and other models need right then (a
        # served image took 45 ms instead of 23 ms on 2 cores; benchmarks/RESULTS.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(self.path / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.labels: list[str] = json.loads((self.path / "labels.json").read_text())
        self.conf = _preprocess_config(self.path)
        self.top_k = int(self.signature.extra.get("top_k", 5))

    def unload(self) -> None:
        del self.session

    def pixels(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The preprocessed images of ``inputs`` (N×3×H×W float32), decoded here unless ``prepare`` did."""
        if PIXELS in inputs:
            return inputs[PIXELS]
        items = [element_bytes(x, f"image[{i}]") for i, x in enumerate(inputs["image"].reshape(-1))]
        return np.stack([preprocess(decode_image(b, f"image[{i}]"), self.conf) for i, b in enumerate(items)])

    def prepare(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Decode and preprocess one request's images before it joins a batch (see ``Runtime.prepares``)."""
        return {PIXELS: self.pixels(inputs)}

    def classify(self, images: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Top-k labels (object array) and softmax scores (float32) for each encoded image; one
        batched forward pass for all of them."""
        return self.scores(self.pixels({"image": np.array(images, dtype=object)}))

    def scores(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k labels and softmax scores of preprocessed images, in one forward pass."""
        logits = self.session.run(None, {self.input_name: batch})[0].astype(np.float32)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        top = np.argsort(-probs, axis=1)[:, : self.top_k]
        labels = np.empty(top.shape, dtype=object)
        labels[:] = [[self.labels[j] for j in row] for row in top]
        return labels, np.take_along_axis(probs, top, axis=1)

    def predict(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        labels, scores = self.scores(self.pixels(inputs))
        return {"label": labels, "score": scores, "top_label": labels[:, 0].copy()}
