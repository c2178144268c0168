import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from modelhost.config import Settings
from modelhost.errors import (
    AliasNotFound,
    ArtifactIntegrityError,
    ImmutableVersion,
    InvalidInput,
    ModelNotFound,
    ProtectedAlias,
    UnsafeArtifact,
    VersionNotFound,
)
from modelhost.registry import Registry
from modelhost.registry.store import sha256_file
from modelhost.registry.tables import ModelVersion


def test_register_assigns_increasing_versions_and_pins_sha(registry: Registry, iris_skops: Path) -> None:
    v1 = registry.register_version(
        "iris",
        iris_skops,
        metrics={"acc": 0.9},
        params={"C": 1.0},
        lineage={"data_hash": "abc"},
        description="first",
    )
    v2 = registry.register_version("iris", iris_skops)
    assert (v1.version, v2.version) == (1, 2)
    assert v1.sha256 == sha256_file(iris_skops)
    assert v1.format == "skops" and v1.runtime == "sklearn"
    assert v1.metrics == {"acc": 0.9} and v1.params == {"C": 1.0}
    assert v1.lineage["data_hash"] == "abc" and "modelhost_version" in v1.lineage
    assert [s.name for s in v1.signature.inputs] == ["input"]
    assert [s.name for s in v1.signature.outputs] == ["predict", "predict_proba"]
    assert v1.signature.inputs[0].shape == (-1, 4)
    assert v1.created_at.tzinfo is not None
    assert [v.version for v in registry.list_versions("iris")] == [1, 2]


def test_versions_are_immutable(registry: Registry, iris_skops: Path) -> None:
    registry.register_version("iris", iris_skops)
    with registry.session() as s:
        row = s.scalar(select(ModelVersion))
        assert row is not None
        row.sha256 = "0" * 64
        with pytest.raises(ImmutableVersion, match="immutable"):
            s.commit()
    assert registry.get_version("iris", 1).sha256 == sha256_file(iris_skops)


def test_convert_onnx_records_lineage(registry: Registry, iris_skops: Path) -> None:
    v = registry.register_version("iris", iris_skops, convert_onnx=True)
    assert v.format == "onnx"
    assert v.lineage["converted_from"]["sha256"] == sha256_file(iris_skops)
    assert v.signature.inputs[0].datatype == "FP32"


def test_alias_history_and_resolution(iris_registry: Registry) -> None:
    reg = iris_registry
    assert reg.resolve("iris").version == 1  # production wins over latest
    assert reg.resolve("iris@staging").version == 2
    reg.set_alias("iris", "production", 2, actor="alice", reason="better")
    reg.set_alias("iris", "production", 2)  # no move, no history row
    history = reg.alias_history("iris", "production")
    assert [(e.from_version, e.to_version) for e in history] == [(None, 1), (1, 2)]
    assert history[1].actor == "alice" and history[1].reason == "better"
    reg.delete_alias("iris", "production")
    assert reg.resolve("iris").version == 2  # latest
    assert reg.alias_history("iris", "production")[-1].to_version is None


def test_protected_alias_needs_force(iris_registry: Registry) -> None:
    reg = iris_registry
    reg.set_alias("iris", "production", 1, protect=True)
    with pytest.raises(ProtectedAlias, match="force"):
        reg.set_alias("iris", "production", 2)
    with pytest.raises(ProtectedAlias):
        reg.set_alias("iris", "production", 1, protect=False)
    with pytest.raises(ProtectedAlias):
        reg.delete_alias("iris", "production")
    assert reg.get_alias("iris", "production").version == 1
    moved = reg.set_alias("iris", "production", 2, force=True)
    assert moved.version == 2 and moved.protected


def test_lookup_errors_are_specific(iris_registry: Registry) -> None:
    reg = iris_registry
    with pytest.raises(ModelNotFound, match="'nope'"):
        reg.resolve("nope")
    with pytest.raises(VersionNotFound, match="versions: 1, 2"):
        reg.get_version("iris", 7)
    with pytest.raises(VersionNotFound, match="positive integers"):
        reg.get_version("iris", "abc")
    with pytest.raises(AliasNotFound):
        reg.resolve("iris@canary")
    with pytest.raises(InvalidInput, match="empty alias"):
        reg.resolve("iris@")
    with pytest.raises(InvalidInput, match="not both"):
        reg.resolve("iris@production", "1")
    with pytest.raises(AliasNotFound):
        reg.alias_history("iris", "never")


@pytest.mark.parametrize("name", ["", "a b", "x/y", "iris@prod", "-lead", "a" * 129])
def test_invalid_model_names(registry: Registry, iris_skops: Path, name: str) -> None:
    with pytest.raises(InvalidInput, match="invalid model name"):
        registry.register_version(name, iris_skops)
    assert registry.list_models() == []


@pytest.mark.parametrize("alias", ["Prod", "1", "a b", ""])
def test_invalid_alias_names(iris_registry: Registry, alias: str) -> None:
    with pytest.raises(InvalidInput, match="invalid alias"):
        iris_registry.set_alias("iris", alias, 1)


def test_tampered_artifact_is_detected(iris_registry: Registry) -> None:
    v = iris_registry.get_version("iris", 1)
    path = Path(v.artifact_uri)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="integrity"):
        iris_registry.artifact_path(v)


def test_unsafe_artifact_leaves_registry_untouched(registry: Registry, tmp_path: Path, iris_model) -> None:  # type: ignore[no-untyped-def]
    import pickle

    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(iris_model))
    with pytest.raises(UnsafeArtifact):
        registry.register_version("iris", path)
    assert registry.list_models() == []


def test_crash_during_artifact_write_leaves_nothing_visible(
    registry: Registry, iris_skops: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*_a: object, **_k: object) -> None:
        raise OSError("disk died mid-write")

    monkeypatch.setattr(registry.store.fs, "mv", crash)
    with pytest.raises(OSError):
        registry.register_version("iris", iris_skops)
    assert registry.list_models() == []
    objects = Path(registry.store.root) / "objects"
    assert not objects.exists() or not any(p.is_file() for p in objects.rglob("*"))
    # the half-written temp file is swept once it is old enough
    assert registry.store.remove_stale_temp(older_than_s=-1) == 1


def test_concurrent_registrations_get_distinct_versions(registry: Registry, iris_skops: Path) -> None:
    registry.register_version("iris", iris_skops)
    results: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(registry.register_version("iris", iris_skops).version)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == [2, 3, 4, 5]


def test_migrations_are_idempotent(settings: Settings, iris_skops: Path) -> None:
    first = Registry(settings)
    first.register_version("iris", iris_skops)
    first.close()
    again = Registry(settings)  # runs migrations again on an up-to-date database
    assert again.get_version("iris", 1).version == 1
    again.close()
