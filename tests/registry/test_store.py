"""The artifact store on a non-local fsspec filesystem (memory://), as S3 would be used."""

from pathlib import Path

import fsspec
import pytest

from modelhost.config import Settings
from modelhost.errors import ArtifactIntegrityError, NotFound
from modelhost.registry import Registry
from modelhost.registry.store import ArtifactStore, sha256_file


@pytest.fixture
def memory_store(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = ArtifactStore(f"memory://modelhost-{tmp_path.name}", tmp_path / "cache")
    yield store
    fsspec.filesystem("memory").rm(store.root, recursive=True)


def test_remote_store_put_fetch_verifies(memory_store: ArtifactStore, iris_skops: Path) -> None:
    stored = memory_store.put(iris_skops)
    assert stored.sha256 == sha256_file(iris_skops)
    assert not memory_store.is_local
    local = memory_store.fetch(stored.uri, stored.sha256)
    assert local.read_bytes() == iris_skops.read_bytes()
    assert local.is_relative_to(memory_store.cache_dir)
    assert memory_store.put(iris_skops).uri == stored.uri  # content-addressed: same bytes, same object


def test_remote_store_detects_tampering(memory_store: ArtifactStore, iris_skops: Path) -> None:
    stored = memory_store.put(iris_skops)
    with memory_store.fs.open(stored.uri, "wb") as f:
        f.write(b"tampered")
    with pytest.raises(ArtifactIntegrityError):
        memory_store.fetch(stored.uri, stored.sha256)
    assert not (memory_store.cache_dir / stored.sha256).exists() or not any(
        (memory_store.cache_dir / stored.sha256).iterdir()
    )
    with pytest.raises(NotFound):
        memory_store.fetch(stored.uri + ".missing", stored.sha256)


def test_registry_serves_from_a_remote_store(tmp_path: Path, iris_skops: Path) -> None:
    settings = Settings(home=tmp_path / "home", artifact_url=f"memory://reg-{tmp_path.name}")
    reg = Registry(settings)
    v = reg.register_version("iris", iris_skops)
    assert f"reg-{tmp_path.name}" in v.artifact_uri and not Path(v.artifact_uri).exists()  # not on local disk
    assert reg.artifact_path(v).read_bytes() == iris_skops.read_bytes()
    reg.close()
