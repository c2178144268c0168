"""Content-addressed artifact store on fsspec (a local directory by default, any fsspec URL for scale).

Writes go to a temporary name and are renamed into place, so a crash never leaves a half-written
artifact visible; every read is checked against the artifact's sha256 pin.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import fsspec
from fsspec.implementations.local import LocalFileSystem

from modelhost.errors import ArtifactIntegrityError, EncryptionError, NotFound

if TYPE_CHECKING:
    from modelhost.gateway.crypto import ArtifactCipher

_CHUNK = 1024 * 1024


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def directory_manifest(path: str | Path) -> str:
    """The manifest of a directory artifact: one ``<relative path>\t<sha256>`` line per file, sorted.

    Hidden files and folders (``.cache``, ``.git``) are left out: tools write them beside models.
    """
    root = Path(path)
    lines = []
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        lines.append(f"{rel.as_posix()}\t{sha256_file(file)}\n")
    return "".join(lines)


def sha256_artifact(path: str | Path) -> str:
    """sha256 of a file, or of a directory's manifest (so any changed, added or removed file shows)."""
    path = Path(path)
    if path.is_dir():
        return hashlib.sha256(directory_manifest(path).encode()).hexdigest()
    return sha256_file(path)


def _artifact_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


@dataclass(frozen=True)
class StoredArtifact:
    uri: str
    sha256: str
    size_bytes: int


class ArtifactStore:
    """Stores immutable artifact files (or directories) under ``<root>/objects/<sha[:2]>/<sha>/<filename>``."""

    def __init__(self, url: str, cache_dir: Path, cipher: ArtifactCipher | None = None) -> None:
        self.cipher = cipher  # set: new artifacts are stored encrypted (gateway/crypto.py)
        self.fs, root = fsspec.core.url_to_fs(url)
        self.root = root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.cache_dir = cache_dir
        self.fs.makedirs(self.root, exist_ok=True)

    def _object_path(self, sha: str, filename: str) -> str:
        return f"{self.root}/objects/{sha[:2]}/{sha}/{filename}"

    def put(self, local_path: str | Path) -> StoredArtifact:
        """Copy a local file or directory into the store (temp name, then rename) and return its pin.

        A directory is pinned by the sha256 of its manifest (sorted relative paths + per-file sha256).
        """
        local_path = Path(local_path)
        sha = sha256_artifact(local_path)
        size = _artifact_size(local_path)
        if local_path.is_dir():
            # Directories (transformers models) are stored in clear: encryption at rest covers
            # single-file artifacts (skops, ONNX, GGUF, safetensors); see docs/security.md.
            final = self._object_path(sha, local_path.name)
            if self.fs.exists(final):
                return StoredArtifact(uri=final, sha256=sha, size_bytes=size)
            return StoredArtifact(uri=self._put_dir(local_path, final), sha256=sha, size_bytes=size)
        if self.cipher is not None:
            final = self._object_path(sha, local_path.name + ".enc")
            if self.fs.exists(final):
                return StoredArtifact(uri=final, sha256=sha, size_bytes=size)
        else:
            final = self._object_path(sha, local_path.name)
            if self.fs.exists(final) and self.fs.size(final) == size:
                return StoredArtifact(uri=final, sha256=sha, size_bytes=size)
        tmp = f"{self.root}/tmp/{uuid.uuid4().hex}-{local_path.name}"
        self.fs.makedirs(f"{self.root}/tmp", exist_ok=True)
        if self.cipher is not None:
            with tempfile.TemporaryDirectory(prefix="modelhost-enc-") as work:
                sealed = Path(work) / "sealed"
                self.cipher.encrypt_file(local_path, sealed, sha)
                self.fs.put_file(str(sealed), tmp)
        else:
            self.fs.put_file(str(local_path), tmp)
        if self.is_local:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        self.fs.mv(tmp, final)
        return StoredArtifact(uri=final, sha256=sha, size_bytes=size)

    def _put_dir(self, local_dir: Path, final: str) -> str:
        tmp = f"{self.root}/tmp/{uuid.uuid4().hex}-{local_dir.name}"
        root = local_dir
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = file.relative_to(root)
            if any(part.startswith(".") for part in rel.parts):
                continue
            target = f"{tmp}/{rel.as_posix()}"
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self.fs.put_file(str(file), target)
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        if self.is_local:
            os.replace(tmp, final)  # one atomic rename of the whole tree
        else:
            self.fs.mv(tmp, final, recursive=True)
        return final

    def fetch(self, uri: str, sha256: str) -> Path:
        """Return a local path to the artifact after verifying it against its sha256 pin."""
        if not self.fs.exists(uri):
            raise NotFound(f"artifact {uri} is missing from the store")
        if self.is_local:
            local = Path(uri)
        else:
            local = self.cache_dir / sha256 / uri.rsplit("/", 1)[-1]
            if not local.exists():
                local.parent.mkdir(parents=True, exist_ok=True)
                tmp = local.with_name(f".{uuid.uuid4().hex}.part")
                if self.fs.isdir(uri):
                    self.fs.get(uri, str(tmp), recursive=True)
                else:
                    self.fs.get_file(uri, str(tmp))
                os.replace(tmp, local)
        from modelhost.gateway.crypto import is_encrypted

        if local.is_file() and is_encrypted(local):
            local = self._decrypted(uri, local, sha256)
        actual = sha256_artifact(local)
        if actual != sha256:
            if not self.is_local:
                if local.is_dir():
                    shutil.rmtree(local, ignore_errors=True)
                else:
                    local.unlink(missing_ok=True)
            raise ArtifactIntegrityError(
                f"artifact {uri} failed its integrity check: sha256 is {actual}, pinned {sha256}; "
                "it was modified or corrupted after registration and will not be loaded"
            )
        return local

    def _decrypted(self, uri: str, sealed: Path, sha256: str) -> Path:
        """A decrypted copy in the private cache (0700 directory, 0600 file) for runtimes to load."""
        if self.cipher is None:
            raise EncryptionError(
                f"artifact {uri} is encrypted at rest and this process has no encryption key: "
                "set MODELHOST_ENCRYPTION_KEY (or MODELHOST_ENCRYPTION_KEY_FILE)"
            )
        plain_dir = self.cache_dir / "decrypted"
        plain_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(plain_dir, 0o700)
        name = uri.rsplit("/", 1)[-1].removesuffix(".enc")
        plain = plain_dir / sha256 / name
        # the decrypted copy is reused only by a process that holds a key opening the artifact
        if self.cipher.check(sealed) == sha256 and plain.exists() and sha256_file(plain) == sha256:
            return plain
        plain.parent.mkdir(exist_ok=True, mode=0o700)
        tmp = plain.with_name(f".{uuid.uuid4().hex}.part")
        pinned = self.cipher.decrypt_file(sealed, tmp)
        if pinned != sha256:
            tmp.unlink(missing_ok=True)
            raise ArtifactIntegrityError(f"encrypted artifact {uri} belongs to sha256 {pinned}, not {sha256}")
        os.replace(tmp, plain)
        return plain

    def remove_stale_temp(self, older_than_s: float = 3600.0) -> int:
        """Delete temporary files left by interrupted writes (older than ``older_than_s``, so a write
        in progress in another process is left alone); returns how many were removed."""
        tmp_dir = f"{self.root}/tmp"
        if not self.is_local or not self.fs.exists(tmp_dir):
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        for entry in Path(tmp_dir).iterdir():
            if entry.stat().st_mtime < cutoff:
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed += 1
        return removed
