"""Encryption of artifacts at rest: AES-256-GCM with envelope encryption.

Each artifact gets its own random 256-bit data key (DEK); the artifact is encrypted with it, and
the DEK is stored in the file's header wrapped (AES-GCM) by the operator's key-encryption key (KEK,
MODELHOST_ENCRYPTION_KEY or a key file). Rotating the KEK only rewraps headers (``rewrap``); the
artifact bodies are untouched. The sha256 pin stays that of the plaintext, and is checked again
after decryption. Runtimes never see the difference: the store hands them a decrypted local file.

File layout: ``MHENC1\\n`` + 4-byte big-endian header length + JSON header + ciphertext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from modelhost.config import Settings
from modelhost.errors import EncryptionError, InvalidInput

MAGIC = b"MHENC1\n"
_ALG = "AES-256-GCM"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


def kek_id(key: bytes) -> str:
    """A short public fingerprint of a key, stored in headers to pick the key that unwraps."""
    return hashlib.sha256(b"modelhost-kek:" + key).hexdigest()[:16]


def parse_key(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip().encode(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{source} is not valid base64") from None
    if len(key) != 32:
        raise InvalidInput(
            f"{source} must be 32 bytes (base64 of 32 random bytes), got {len(key)}; "
            'make one with: python -c "import os,base64; print(base64.b64encode(os.urandom(32)).decode())"'
        )
    return key


def generate_key() -> str:
    """A new random KEK, base64 (what ``modelhost encryption new-key`` prints)."""
    return _b64(os.urandom(32))


@dataclass(frozen=True)
class Header:
    kek_id: str
    wrapped_dek: bytes
    dek_nonce: bytes
    nonce: bytes
    sha256: str

    def dump(self) -> bytes:
        return json.dumps(
            {
                "alg": _ALG,
                "kek_id": self.kek_id,
                "wrapped_dek": _b64(self.wrapped_dek),
                "dek_nonce": _b64(self.dek_nonce),
                "nonce": _b64(self.nonce),
                "sha256": self.sha256,
            },
            sort_keys=True,
        ).encode()


def is_encrypted(path: str | Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def _read(path: str | Path, header_only: bool = False) -> tuple[Header, bytes]:
    if header_only:
        with open(path, "rb") as f:
            data = f.read(len(MAGIC) + 4)
            if len(data) == len(MAGIC) + 4:
                data += f.read(struct.unpack(">I", data[len(MAGIC) :])[0])
    else:
        data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise EncryptionError(f"{path} is not an encrypted modelhost artifact")
    try:
        (n,) = struct.unpack(">I", data[len(MAGIC) : len(MAGIC) + 4])
        start = len(MAGIC) + 4
        raw = json.loads(data[start : start + n])
        header = Header(
            raw["kek_id"],
            _unb64(raw["wrapped_dek"]),
            _unb64(raw["dek_nonce"]),
            _unb64(raw["nonce"]),
            raw["sha256"],
        )
    except (struct.error, ValueError, KeyError, binascii.Error) as exc:
        raise EncryptionError(f"encrypted artifact {path} has a damaged header: {exc}") from None
    return header, data[start + n :]


def _aad(sha256: str) -> bytes:
    # binds the body to its pin: a body swapped between two artifacts fails authentication
    return b"modelhost-artifact:" + sha256.encode()


SEALED_PREFIX = "mhsec1:"


def _secret_aad(kid: str) -> bytes:
    return b"modelhost-secret:" + kid.encode()


class ArtifactCipher:
    """Encrypts with the first key; decrypts with any of them (key rotation)."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise InvalidInput("an artifact cipher needs at least one key")
        self.keys = {kek_id(k): k for k in keys}
        self.current = kek_id(keys[0])

    def _kek(self, kid: str, path: str | Path) -> bytes:
        key = self.keys.get(kid)
        if key is None:
            raise EncryptionError(
                f"artifact {path} is encrypted with key {kid}, which is not configured "
                "(add it to MODELHOST_ENCRYPTION_OLD_KEYS or the key file to read it)"
            )
        return key

    def encrypt_file(self, src: str | Path, dst: str | Path, sha256: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        dek, nonce, dek_nonce = os.urandom(32), os.urandom(12), os.urandom(12)
        body = AESGCM(dek).encrypt(nonce, Path(src).read_bytes(), _aad(sha256))
        wrapped = AESGCM(self.keys[self.current]).encrypt(dek_nonce, dek, self.current.encode())
        header = Header(self.current, wrapped, dek_nonce, nonce, sha256).dump()
        with open(dst, "wb") as f:
            f.write(MAGIC + struct.pack(">I", len(header)) + header + body)

    def _dek(self, header: Header, path: str | Path) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            return AESGCM(self._kek(header.kek_id, path)).decrypt(
                header.dek_nonce, header.wrapped_dek, header.kek_id.encode()
            )
        except InvalidTag:
            raise EncryptionError(
                f"the data key of {path} does not unwrap: wrong key or tampered header"
            ) from None

    def check(self, path: str | Path) -> str:
        """Unwrap the file's data key (header only, cheap): proves this process holds a key that
        opens it, before a previously decrypted copy is reused. Returns the pinned sha256."""
        header, _ = _read(path, header_only=True)
        self._dek(header, path)
        return header.sha256

    def decrypt_file(self, src: str | Path, dst: str | Path) -> str:
        """Decrypt ``src`` into ``dst`` (mode 0600); returns the plaintext's pinned sha256."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        header, body = _read(src)
        try:
            plain = AESGCM(self._dek(header, src)).decrypt(header.nonce, body, _aad(header.sha256))
        except InvalidTag:
            raise EncryptionError(
                f"encrypted artifact {src} fails authentication: tampered or corrupted"
            ) from None
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(plain)
        return header.sha256

    def seal(self, secret: str) -> str:
        """A small secret (an upstream's API key) encrypted with the current key, as printable text:
        ``mhsec1:<key id>:<base64 nonce + ciphertext>``. Only a process holding the key opens it."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        sealed = AESGCM(self.keys[self.current]).encrypt(nonce, secret.encode(), _secret_aad(self.current))
        return f"{SEALED_PREFIX}{self.current}:{_b64(nonce + sealed)}"

    def unseal(self, token: str) -> str:
        """The secret of a ``seal`` token; EncryptionError when this process lacks its key or it is damaged."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        kid, _, body = token.removeprefix(SEALED_PREFIX).partition(":")
        try:
            raw = _unb64(body)
            return (
                AESGCM(self._kek(kid, "a sealed secret"))
                .decrypt(raw[:12], raw[12:], _secret_aad(kid))
                .decode()
            )
        except (InvalidTag, binascii.Error, ValueError):
            raise EncryptionError("a sealed secret does not open: wrong key or damaged text") from None

    def rewrap(self, path: str | Path) -> bool:
        """Rewrap the file's data key with the current key; False if it already uses it."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        header, body = _read(path)
        if header.kek_id == self.current:
            return False
        dek, dek_nonce = self._dek(header, path), os.urandom(12)
        wrapped = AESGCM(self.keys[self.current]).encrypt(dek_nonce, dek, self.current.encode())
        new = Header(self.current, wrapped, dek_nonce, header.nonce, header.sha256).dump()
        tmp = Path(f"{path}.rewrap")
        tmp.write_bytes(MAGIC + struct.pack(">I", len(new)) + new + body)
        os.replace(tmp, path)
        return True


def cipher_from_settings(settings: Settings) -> ArtifactCipher | None:
    """The cipher configured by MODELHOST_ENCRYPTION_KEY / _KEY_FILE / _OLD_KEYS, or None (clear)."""
    keys: list[bytes] = []
    if settings.encryption_key:
        keys.append(parse_key(settings.encryption_key, "MODELHOST_ENCRYPTION_KEY"))
    elif settings.encryption_key_file is not None:
        try:
            lines = settings.encryption_key_file.read_text().split()
        except OSError as exc:
            raise InvalidInput(f"cannot read MODELHOST_ENCRYPTION_KEY_FILE: {exc}") from None
        keys += [parse_key(line, f"a key in {settings.encryption_key_file}") for line in lines if line]
    if not keys:
        if settings.encryption_old_keys:
            raise InvalidInput("MODELHOST_ENCRYPTION_OLD_KEYS is set but no current encryption key is")
        return None
    keys += [parse_key(k, "a key in MODELHOST_ENCRYPTION_OLD_KEYS") for k in settings.encryption_old_keys]
    return ArtifactCipher(keys)
