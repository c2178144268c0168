"""The artifact store on a non-local fsspec filesystem (memory://), as S3 would be used."""

from collections.abc import Iterator
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


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server; credentials and endpoint as an operator sets them for MinIO or AWS."""
    from tests.services.s3 import S3Server, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = S3Server()
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # a cached client would keep an older endpoint
    fs = s3fs.S3FileSystem()
    fs.mkdir("models")
    yield server.endpoint
    s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


def test_registry_on_s3_registers_fetches_serves_and_detects_tampering(
    s3: str,
    tmp_path: Path,
    iris_skops: Path,
    iris_model,
    iris_xy,  # type: ignore[no-untyped-def]
) -> None:
    from fastapi.testclient import TestClient

    from modelhost.serving.app import create_app

    settings = Settings(home=tmp_path / "home", artifact_url="s3://models/registry", grpc_port=0)
    reg = Registry(settings)
    v = reg.register_version("iris", iris_skops)
    assert v.artifact_uri.startswith("models/registry/objects/") and not reg.store.is_local
    assert reg.store.fs.cat_file(v.artifact_uri) == iris_skops.read_bytes()  # really in the bucket
    local = reg.artifact_path(v)
    assert local.is_relative_to(settings.resolved_cache_dir) and local.read_bytes() == iris_skops.read_bytes()

    x, _ = iris_xy
    body = {
        "inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP64", "data": x[:3].ravel().tolist()}]
    }
    with TestClient(create_app(settings, registry=reg)) as client:
        r = client.post("/v2/models/iris/infer", json={**body, "outputs": [{"name": "predict"}]})
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == iris_model.predict(x[:3]).tolist()

    with reg.store.fs.open(v.artifact_uri, "wb") as f:
        f.write(b"tampered in the bucket")
    local.unlink()  # a fresh node: nothing cached yet
    with pytest.raises(ArtifactIntegrityError):
        reg.artifact_path(v)
    reg.close()
