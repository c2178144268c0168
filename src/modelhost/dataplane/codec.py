"""Tensor codecs: OIP JSON data and the binary tensor extension <-> numpy, with strict checks.

Strict means a value is never silently changed: a string is not parsed as a number, 1.5 is not
truncated to an integer, and an out-of-range integer is refused.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from modelhost.errors import InvalidInput
from modelhost.runtimes.base import DATATYPE_TO_NUMPY, datatype_of

MAX_RANK = 32
MAX_ELEMENTS = 2**32  # also for zero-size shapes, whose other dimensions numpy still multiplies
_ACCEPTED_KINDS = {"BOOL": "b", "FP16": "iuf", "FP32": "iuf", "FP64": "iuf", "BYTES": "U"}
_KIND_NAMES = {
    "b": "booleans",
    "i": "integers",
    "u": "integers",
    "f": "floating-point numbers",
    "U": "strings",
}


def _check_shape(name: str, shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, list | tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in shape
    ):
        raise InvalidInput(f"input '{name}': shape must be a list of integers, got {shape!r}")
    if any(d < 0 for d in shape):
        raise InvalidInput(f"input '{name}': shape {list(shape)} has a negative dimension")
    if len(shape) > MAX_RANK or math.prod(d for d in shape if d) > MAX_ELEMENTS:
        raise InvalidInput(
            f"input '{name}': shape {list(shape)} is out of bounds (at most {MAX_RANK} dimensions and {MAX_ELEMENTS} elements)"
        )
    return tuple(shape)


def _check_datatype(name: str, datatype: Any) -> np.dtype[Any]:
    try:
        return DATATYPE_TO_NUMPY[datatype]
    except (KeyError, TypeError):
        raise InvalidInput(
            f"input '{name}': unknown datatype {datatype!r}; expected one of {', '.join(DATATYPE_TO_NUMPY)}"
        ) from None


def decode_json(name: str, datatype: Any, shape: Any, data: Any) -> np.ndarray:
    """Decode an OIP JSON tensor (flat or nested row-major ``data``) into a numpy array."""
    dims = _check_shape(name, shape)
    dtype = _check_datatype(name, datatype)
    if not isinstance(data, list):
        data = [data]
    try:
        raw = np.array(data)
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(
            f"input '{name}': data is not a regular array of {datatype} values ({exc})"
        ) from None
    count = math.prod(dims)
    if raw.size != count:
        raise InvalidInput(
            f"input '{name}': shape {list(dims)} needs {count} elements but data has {raw.size}"
        )
    if raw.size == 0:
        return np.empty(dims, dtype=dtype)
    kind = raw.dtype.kind
    accepted = _ACCEPTED_KINDS.get(datatype, "iu")
    if kind not in accepted:
        found = _KIND_NAMES.get(kind, "mixed or null values")
        raise InvalidInput(f"input '{name}': datatype {datatype} cannot hold {found} from the data")
    if datatype == "BYTES":
        return raw.astype(object).reshape(dims)
    if kind in "iu" and dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = int(raw.min()), int(raw.max())
        if lo < info.min or hi > info.max:
            raise InvalidInput(f"input '{name}': values [{lo}, {hi}] are out of range for {datatype}")
    return raw.astype(dtype, copy=False).reshape(dims)


def encode_json(array: np.ndarray) -> tuple[str, list[int], list[Any]]:
    """(datatype, shape, flat row-major data) of an output array."""
    datatype = datatype_of(array)
    flat = array.reshape(-1)
    if datatype == "BYTES":
        data = [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in flat]
    else:
        data = flat.tolist()
    return datatype, list(array.shape), data


# --- binary tensor data extension (Triton / KServe) ------------------------------------------------


def decode_binary(name: str, datatype: Any, shape: Any, buf: bytes | memoryview) -> np.ndarray:
    dims = _check_shape(name, shape)
    dtype = _check_datatype(name, datatype)
    count = math.prod(dims)
    if datatype == "BYTES":
        items: list[bytes] = []
        view, pos = memoryview(buf), 0
        while pos < len(view):
            if pos + 4 > len(view):
                raise InvalidInput(f"input '{name}': truncated BYTES element length")
            (n,) = struct.unpack_from("<I", view, pos)
            pos += 4
            if pos + n > len(view):
                raise InvalidInput(f"input '{name}': BYTES element of {n} bytes runs past the data")
            items.append(bytes(view[pos : pos + n]))
            pos += n
        if len(items) != count:
            raise InvalidInput(
                f"input '{name}': shape {list(dims)} needs {count} elements but data has {len(items)}"
            )
        out = np.empty(count, dtype=object)
        out[:] = items
        return out.reshape(dims)
    le = dtype.newbyteorder("<")
    if len(buf) != count * le.itemsize:
        raise InvalidInput(
            f"input '{name}': shape {list(dims)} of {datatype} needs {count * le.itemsize} bytes, got {len(buf)}"
        )
    return np.frombuffer(buf, dtype=le).astype(dtype, copy=False).reshape(dims)


def encode_binary(array: np.ndarray) -> tuple[str, list[int], bytes]:
    datatype = datatype_of(array)
    if datatype == "BYTES":
        parts = []
        for x in array.reshape(-1):
            b = x if isinstance(x, bytes) else str(x).encode("utf-8")
            parts.append(struct.pack("<I", len(b)) + b)
        return datatype, list(array.shape), b"".join(parts)
    le = array.dtype.newbyteorder("<")
    return datatype, list(array.shape), np.ascontiguousarray(array, dtype=le).tobytes()
