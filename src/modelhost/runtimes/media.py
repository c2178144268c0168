"""Decoding media tensors: BYTES elements are raw bytes (binary extension) or base64 strings (JSON)."""

from __future__ import annotations

import binascii
import io
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from modelhost.errors import InvalidInput


def _base64_decoder() -> Callable[..., bytes]:
    """pybase64 (SIMD: 4 µs instead of 150 µs for an 80 KB JPEG; a core dependency), else the stdlib."""
    try:
        import pybase64

        return pybase64.b64decode
    except ImportError:  # pragma: no cover
        import base64

        return base64.b64decode


b64decode = _base64_decoder()

SAMPLE_RATE = 16_000


def element_bytes(value: Any, what: str) -> bytes:
    """The raw bytes of one BYTES element: bytes as given; a JSON string is base64."""
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    else:
        try:
            data = b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(
                f"{what} in JSON must be a base64 string (or send raw bytes with the binary extension)"
            ) from None
    if not data:
        raise InvalidInput(f"{what} is empty")
    return data


_DECODE_LOCK = threading.Lock()
_OPENMP_ONCE = threading.Lock()
_openmp_shared = False


def share_openmp_with_torch() -> None:
    """Make CTranslate2 (Whisper) use torch's GNU OpenMP runtime; call before importing faster_whisper.

    Both wheels bundle their own libgomp under different names (torch ``libgomp.so.1``, CTranslate2
    ``libgomp-e985bcbb.so.1.0.0``). torch loads its copy into the global symbol scope, so whichever is
    imported first decides: torch first, CTranslate2 binds to torch's runtime; CTranslate2 first, the
    process runs two OpenMP runtimes, each with its own spinning thread pool (seen in ``/proc/PID/maps``
    of the demo server, and a suspect in an intermittent native crash under load). Loading torch's
    libgomp globally here (only the library, not torch) makes the order irrelevant. No-op without torch.
    """
    global _openmp_shared
    with _OPENMP_ONCE:
        if _openmp_shared:
            return
        _openmp_shared = True
        import ctypes
        import importlib.util
        from pathlib import Path

        spec = importlib.util.find_spec("torch")
        if spec is None or spec.origin is None:
            return
        library = Path(spec.origin).parent / "lib" / "libgomp.so.1"
        if library.is_file():
            ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)


def decode_audio(data: bytes, what: str = "audio") -> np.ndarray:
    """Mono float32 samples at 16 kHz from any container/codec PyAV reads (WAV, FLAC, MP3, OGG…);
    other sample rates are resampled. Undecodable bytes are an InvalidInput, never a crash."""
    share_openmp_with_torch()
    from faster_whisper.audio import decode_audio as fw_decode

    try:
        # Serialised: concurrent PyAV decoding is suspected in an intermittent native crash of the
        # server (see the session notes); decoding a clip takes milliseconds.
        with _DECODE_LOCK:
            audio = fw_decode(io.BytesIO(data), sampling_rate=SAMPLE_RATE)
    except Exception as exc:  # PyAV raises its own error tree (InvalidDataError, …) for bad input
        raise InvalidInput(f"{what} could not be decoded as audio: {type(exc).__name__}: {exc}") from None
    if not isinstance(audio, np.ndarray) or audio.size == 0:
        raise InvalidInput(f"{what} holds no audio samples")
    return audio.astype(np.float32, copy=False)


def decode_image(data: bytes, what: str = "image") -> Any:
    """An RGB PIL image from PNG/JPEG/WebP/… bytes; undecodable bytes are an InvalidInput."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        # PIL's messages name an internal BytesIO object; the format list is what helps the client.
        raise InvalidInput(
            f"{what} could not be decoded as an image (JPEG, PNG, WebP, GIF, BMP or TIFF expected; "
            f"{type(exc).__name__})"
        ) from None
    return image.convert("RGB")
