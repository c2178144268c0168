"""Safe artifact formats: detection from content (not only the file name) and loading guards.

Only formats that cannot run code when loaded are accepted. Pickle and joblib files are refused
with an error that names the safe alternative.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from modelhost.errors import UnsafeArtifact, UnsupportedFormat

SKOPS = "skops"
ONNX = "onnx"
SAFETENSORS = "safetensors"
GGUF = "gguf"
KERAS = "keras"
TRANSFORMERS = "transformers"
SENTENCE_TRANSFORMERS = "sentence-transformers"
CTRANSLATE2 = "ctranslate2"
BERGAMOT = "bergamot"
IMAGE_CLASSIFIER = "image-classifier"
GRAPH = "graph"
OPENAI_UPSTREAM = "openai-upstream"  # a JSON manifest naming a remote OpenAI-compatible endpoint

PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib", ".pt", ".pth", ".ckpt", ".sav", ".dill"}
_SAFE_WAY = (
    "pickle can run arbitrary code when loaded, so modelhost refuses it. Save scikit-learn models "
    "with skops (skops.io.dump(model, 'model.skops')) or convert them to ONNX (skl2onnx, or "
    "`modelhost models register --convert-onnx` from a skops file); save tensors with safetensors"
)

# Compressed-stream magics that joblib uses around a pickle.
_COMPRESSED_MAGICS = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bz2",
    b"\xfd7zXZ\x00": "xz",
    b"\x04\x22\x4d\x18": "lz4",
}
_ZLIB_HEADERS = {b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda"}


def _looks_like_pickle(head: bytes, tail: bytes) -> bool:
    # Protocol 2+ starts with PROTO (0x80) and a protocol number; protocol 0/1 dumps of objects
    # start with a global/mark/empty-container opcode and end with STOP ('.').
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    return head[:1] in (b"(", b"c", b"]", b"}") and tail.endswith(b".")


def detect_format(path: str | Path) -> str:
    """Return the artifact's format name, or raise UnsafeArtifact / UnsupportedFormat."""
    path = Path(path)
    if not path.exists():
        raise UnsupportedFormat(f"artifact path {path} does not exist")
    if path.is_dir():
        return _detect_dir(path)
    with open(path, "rb") as f:
        head = f.read(16)
        f.seek(max(0, path.stat().st_size - 1))
        tail = f.read(1)
    if not head:
        raise UnsupportedFormat(f"{path} is empty")
    suffix = path.suffix.lower()
    if _looks_like_pickle(head, tail):
        raise UnsafeArtifact(f"{path.name} is a pickle file. {_SAFE_WAY}")
    for magic, kind in _COMPRESSED_MAGICS.items():
        if head.startswith(magic):
            raise UnsafeArtifact(
                f"{path.name} is a {kind}-compressed stream (joblib's compressed pickle format). {_SAFE_WAY}"
            )
    if head[:2] in _ZLIB_HEADERS:
        raise UnsafeArtifact(f"{path.name} is a zlib-compressed stream (joblib's format). {_SAFE_WAY}")
    if head.startswith(b"GGUF"):
        return GGUF
    if head.startswith(b"PK\x03\x04"):
        return _detect_zip(path)
    if len(head) >= 9 and head[8:9] == b"{" and suffix == ".safetensors":
        return SAFETENSORS
    if suffix in PICKLE_SUFFIXES:
        raise UnsafeArtifact(f"{path.name} has a pickle/joblib file name. {_SAFE_WAY}")
    if suffix == ".json" and head.lstrip().startswith(b"{") and _is_upstream_manifest(path):
        return OPENAI_UPSTREAM
    if suffix == ".json" and head.lstrip().startswith(b"{"):
        # A model graph (runtimes/graph.py checks its content); JSON cannot run code.
        return GRAPH
    if _is_onnx(path):
        return ONNX
    raise UnsupportedFormat(
        f"{path.name} is not a recognised safe model format; accepted: skops (.skops), ONNX (.onnx), "
        "safetensors (.safetensors), Keras 3 (.keras)"
    )


def _is_upstream_manifest(path: Path) -> bool:
    """A small JSON object with ``"format": "openai-upstream"`` (runtimes/upstream.py checks the rest)."""
    import json

    if path.stat().st_size > 64 * 1024:
        return False
    try:
        doc = json.loads(path.read_bytes())
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("format") == OPENAI_UPSTREAM


def _check_no_pickle(path: Path, files: list[Path]) -> None:
    """Engine weight files named .bin (CTranslate2, Bergamot) are their own binary formats, but a
    pickle renamed .bin is still refused: the content decides."""
    for p in files:
        with open(p, "rb") as f:
            head = f.read(16)
            f.seek(max(0, p.stat().st_size - 1))
            tail = f.read(1)
        if _looks_like_pickle(head, tail) or head.startswith(b"PK\x03\x04"):
            raise UnsafeArtifact(f"{path.name}/{p.relative_to(path)} is a pickle file. {_SAFE_WAY}")


def _detect_engine_dir(path: Path, files: list[Path]) -> str | None:
    """Directories of engines with their own (non-pickle) weight formats; None when not one."""
    if (path / "model.bin").is_file() and (path / "config.json").is_file():
        # Whisper dirs have vocabulary.*; translation models shared_/source_/target_vocabulary.*
        if not any(path.glob("*vocabulary.*")):
            return None
        _check_no_pickle(path, [path / "model.bin"])
        return CTRANSLATE2
    directions = [d for d in path.iterdir() if d.is_dir() and (d / "model_info.json").is_file()]
    if directions and all(any(d.glob("*.spm")) and any(d.glob("model.*.bin")) for d in directions):
        _check_no_pickle(path, [p for p in files if p.suffix == ".bin"])
        return BERGAMOT
    if (path / "model.onnx").is_file() and (path / "labels.json").is_file():
        if not _is_onnx(path / "model.onnx"):
            raise UnsupportedFormat(f"{path.name}/model.onnx is not a readable ONNX model")
        return IMAGE_CLASSIFIER
    return None


def _detect_dir(path: Path) -> str:
    """A transformers or sentence-transformers directory whose weights are all safetensors, or an
    engine directory (CTranslate2, Bergamot, ONNX image classifier)."""
    files = [
        p
        for p in path.rglob("*")
        if p.is_file() and not any(x.startswith(".") for x in p.relative_to(path).parts)
    ]
    engine = _detect_engine_dir(path, files)
    if engine is not None:
        return engine
    unsafe = sorted(str(p.relative_to(path)) for p in files if p.suffix.lower() in PICKLE_SUFFIXES | {".bin"})
    if unsafe:
        raise UnsafeArtifact(
            f"{path.name} holds pickle-based weights ({', '.join(unsafe[:3])}); save the model with "
            "safetensors (model.save_pretrained(dir, safe_serialization=True)) and leave the .bin/.pt files out"
        )
    has_safetensors = any(p.suffix == ".safetensors" for p in files)
    if (path / "modules.json").is_file() and has_safetensors:
        return SENTENCE_TRANSFORMERS
    if (path / "config.json").is_file() and has_safetensors:
        return TRANSFORMERS
    raise UnsupportedFormat(
        f"{path} is a directory but not a transformers model (config.json + *.safetensors) or a "
        "sentence-transformers model (modules.json + *.safetensors), a CTranslate2 model (model.bin + "
        "config.json + vocabulary), Bergamot translation models, or an image classifier (model.onnx + labels.json)"
    )


def _detect_zip(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except zipfile.BadZipFile as exc:
        raise UnsupportedFormat(f"{path.name} looks like a zip archive but cannot be read: {exc}") from exc
    if "schema.json" in names:
        return SKOPS
    if "config.json" in names and "metadata.json" in names and "model.weights.h5" in names:
        return KERAS
    if any(n.endswith(".pkl") for n in names):
        raise UnsafeArtifact(
            f"{path.name} is a zip archive holding pickles (a torch.save file or similar). {_SAFE_WAY}"
        )
    raise UnsupportedFormat(f"{path.name} is a zip archive but not a skops or .keras file")


def _is_onnx(path: Path) -> bool:
    import onnx

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:
        return False
    return bool(model.graph.node) or bool(model.graph.output)


# --- skops: a platform-owned allow-list --------------------------------------------------------

TRUSTED_MODULE_ROOTS = ("numpy", "scipy", "sklearn")
# Names in trusted packages that still touch files or native code; never trusted.
_DENIED_NAME_PARTS = (
    "load",
    "save",
    "fromfile",
    "tofile",
    "memmap",
    "ctypeslib",
    "f2py",
    "distutils",
    "testing",
)


def _is_trusted_type(type_name: str, extra: set[str]) -> bool:
    if type_name in extra:
        return True
    root = type_name.split(".", 1)[0]
    if root not in TRUSTED_MODULE_ROOTS:
        return False
    lowered = type_name.lower()
    return not any(part in lowered for part in _DENIED_NAME_PARTS)


def skops_trusted_types(path: str | Path, extra_trusted: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Return the types to pass to ``skops.io.load(trusted=...)``; raise UnsafeArtifact on any other."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=str(path))
    except Exception as exc:
        raise UnsupportedFormat(f"{Path(path).name} is not a readable skops file: {exc}") from exc
    extra = set(extra_trusted)
    refused = sorted(t for t in untrusted if not _is_trusted_type(t, extra))
    if refused:
        raise UnsafeArtifact(
            f"{Path(path).name} contains types outside the trusted list (numpy, scipy, scikit-learn): "
            f"{', '.join(refused)}. An operator may trust more types with MODELHOST_SKOPS_EXTRA_TRUSTED_TYPES"
        )
    return list(untrusted)
