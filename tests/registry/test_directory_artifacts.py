"""Directory artifacts (transformers / sentence-transformers): manifest pin, store, verify, safety."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelhost.errors import ArtifactIntegrityError, UnsafeArtifact, UnsupportedFormat
from modelhost.registry.formats import SENTENCE_TRANSFORMERS, TRANSFORMERS, detect_format
from modelhost.registry.store import ArtifactStore, directory_manifest, sha256_artifact, sha256_file


def make_dir(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_manifest_lists_sorted_relative_paths_with_sha256(tmp_path: Path) -> None:
    d = make_dir(tmp_path / "m", {"b.txt": b"b", "a/z.bin2": b"z", ".cache/x": b"ignored"})
    lines = directory_manifest(d).splitlines()
    assert lines == [f"a/z.bin2\t{sha256_file(d / 'a/z.bin2')}", f"b.txt\t{sha256_file(d / 'b.txt')}"]


def test_directory_pin_changes_with_content_names_and_added_files(tmp_path: Path) -> None:
    d = make_dir(tmp_path / "m", {"a": b"1", "b": b"2"})
    pin = sha256_artifact(d)
    (d / "b").write_bytes(b"3")
    changed = sha256_artifact(d)
    assert changed != pin
    (d / "c").write_bytes(b"")
    assert sha256_artifact(d) not in (pin, changed)
    (d / "c").rename(d / "d")
    assert sha256_artifact(d) != changed


def test_store_put_and_fetch_directory_verifies_pin(tmp_path: Path) -> None:
    d = make_dir(tmp_path / "model", {"config.json": b"{}", "sub/w.safetensors": b"x" * 10})
    store = ArtifactStore(str(tmp_path / "store"), tmp_path / "cache")
    stored = store.put(d)
    assert stored.size_bytes == 12
    assert store.put(d).uri == stored.uri  # idempotent
    local = store.fetch(stored.uri, stored.sha256)
    assert (local / "sub/w.safetensors").read_bytes() == b"x" * 10
    (local / "sub/w.safetensors").write_bytes(b"tampered!!")
    with pytest.raises(ArtifactIntegrityError, match="integrity"):
        store.fetch(stored.uri, stored.sha256)


def test_remote_store_directory_roundtrip(tmp_path: Path) -> None:
    d = make_dir(tmp_path / "model", {"config.json": b"{}", "w.safetensors": b"abc"})
    store = ArtifactStore("memory://dir-test", tmp_path / "cache")
    stored = store.put(d)
    local = store.fetch(stored.uri, stored.sha256)
    assert local.is_dir() and (local / "w.safetensors").read_bytes() == b"abc"
    assert sha256_artifact(local) == stored.sha256


def test_detects_transformers_and_sentence_transformers_dirs(tmp_path: Path) -> None:
    hf = make_dir(tmp_path / "hf", {"config.json": json.dumps({}).encode(), "model.safetensors": b"x"})
    assert detect_format(hf) == TRANSFORMERS
    st = make_dir(tmp_path / "st", {"modules.json": b"[]", "config.json": b"{}", "model.safetensors": b"x"})
    assert detect_format(st) == SENTENCE_TRANSFORMERS


def test_directory_with_pickle_weights_is_refused(tmp_path: Path) -> None:
    d = make_dir(tmp_path / "hf", {"config.json": b"{}", "pytorch_model.bin": b"\x80\x04"})
    with pytest.raises(UnsafeArtifact, match="safetensors"):
        detect_format(d)


def test_directory_without_a_model_is_unsupported(tmp_path: Path) -> None:
    d = make_dir(tmp_path / "docs", {"README.md": b"hi"})
    with pytest.raises(UnsupportedFormat, match="not a transformers model"):
        detect_format(d)
