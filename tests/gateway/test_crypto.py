"""Encryption at rest: artifacts are unreadable without the key, served with it, and keys rotate."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modelhost.config import Settings
from modelhost.errors import EncryptionError, InvalidInput
from modelhost.gateway.crypto import MAGIC, cipher_from_settings, generate_key, is_encrypted
from modelhost.registry import Registry
from modelhost.serving.app import create_app

ROW = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}


@pytest.fixture
def sealed(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", encryption_key=generate_key(), grpc_port=0)


def test_encrypted_artifact_is_unreadable_without_the_key_and_served_with_it(
    sealed: Settings, iris_skops: Path
) -> None:
    reg = Registry(sealed)
    info = reg.register_version("iris", iris_skops)
    stored = Path(info.artifact_uri)
    data = stored.read_bytes()
    assert data.startswith(MAGIC) and stored.name.endswith(".enc")
    plain = iris_skops.read_bytes()
    assert plain[:64] not in data and plain[-64:] not in data  # no plaintext left in the store
    with pytest.raises(Exception):  # noqa: B017 - any loader must fail on the sealed bytes
        import skops.io as sio

        sio.load(stored, trusted=[])
    reg.close()

    # served with the key: transparent to the runtime
    reg = Registry(sealed)
    with TestClient(create_app(sealed, registry=reg)) as c:
        r = c.post("/v2/models/iris/infer", json=ROW)
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [0]
    reg.close()

    # without the key: refused with a clear message, nothing loaded
    reg = Registry(sealed.model_copy(update={"encryption_key": None}))
    with pytest.raises(EncryptionError, match="no encryption key"):
        reg.artifact_path(info)
    reg.close()

    # with a different key: refused
    reg = Registry(sealed.model_copy(update={"encryption_key": generate_key()}))
    with pytest.raises(EncryptionError, match="not configured"):
        reg.artifact_path(info)
    reg.close()


def test_tampered_ciphertext_is_refused(sealed: Settings, iris_skops: Path) -> None:
    reg = Registry(sealed)
    info = reg.register_version("iris", iris_skops)
    path = Path(info.artifact_uri)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(EncryptionError, match="tampered"):
        reg.artifact_path(info)
    reg.close()


def test_key_rotation_rewraps_headers_and_old_keys_still_decrypt(
    sealed: Settings, iris_skops: Path, tmp_path: Path
) -> None:
    old_key = sealed.encryption_key
    assert old_key is not None
    reg = Registry(sealed)
    info = reg.register_version("iris", iris_skops)
    reg.close()
    new_key = generate_key()
    key_file = tmp_path / "keys.txt"
    key_file.write_text(f"{new_key}\n{old_key}\n")
    rotated = sealed.model_copy(update={"encryption_key": None, "encryption_key_file": key_file})
    reg = Registry(rotated)
    assert reg.artifact_path(info).read_bytes() == iris_skops.read_bytes()  # old key still decrypts
    cipher = reg.store.cipher
    assert cipher is not None
    body_before = Path(info.artifact_uri).read_bytes()[-200:]
    assert cipher.rewrap(info.artifact_uri) is True and cipher.rewrap(info.artifact_uri) is False
    assert Path(info.artifact_uri).read_bytes()[-200:] == body_before  # only the header changed
    reg.close()
    only_new = sealed.model_copy(update={"encryption_key": new_key})
    reg = Registry(only_new)
    for f in (reg.store.cache_dir / "decrypted").rglob("*"):
        if f.is_file():
            f.unlink()
    assert reg.artifact_path(info).read_bytes() == iris_skops.read_bytes()
    reg.close()


def test_clear_store_stays_clear_and_bad_keys_are_reported(settings: Settings, iris_skops: Path) -> None:
    reg = Registry(settings)
    info = reg.register_version("iris", iris_skops)
    assert not is_encrypted(info.artifact_uri)
    reg.close()
    for bad in ("not base64!", "c2hvcnQ="):
        with pytest.raises(InvalidInput, match="MODELHOST_ENCRYPTION_KEY"):
            cipher_from_settings(settings.model_copy(update={"encryption_key": bad}))
    with pytest.raises(InvalidInput, match="OLD_KEYS"):
        cipher_from_settings(settings.model_copy(update={"encryption_old_keys": [generate_key()]}))
    asyncio.run(asyncio.sleep(0))
