import numpy as np
import pytest

from modelhost.dataplane import codec
from modelhost.errors import InvalidInput


def test_flat_and_nested_data_decode_alike() -> None:
    flat = codec.decode_json("x", "FP32", [2, 2], [1, 2, 3, 4])
    nested = codec.decode_json("x", "FP32", [2, 2], [[1, 2], [3, 4]])
    assert flat.dtype == np.float32 and flat.shape == (2, 2)
    np.testing.assert_array_equal(flat, nested)


@pytest.mark.parametrize(
    ("datatype", "data", "match"),
    [
        ("FP32", ["1.5", "2"], "cannot hold strings"),
        ("INT64", [1.5, 2.0], "cannot hold floating-point"),
        ("FP64", [True, False], "cannot hold booleans"),
        ("BOOL", [1, 0], "cannot hold integers"),
        ("BYTES", [1, 2], "cannot hold integers"),
        ("INT8", [1, 300], "out of range"),
        ("UINT8", [-1, 3], "out of range"),
        ("FP32", [1, None], "null"),
        ("FLOAT", [1, 2], "unknown datatype"),
    ],
)
def test_values_are_never_silently_converted(datatype: str, data: list, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidInput, match=match):
        codec.decode_json("x", datatype, [2], data)


@pytest.mark.parametrize(
    ("shape", "data", "match"),
    [
        ([2, 2], [1, 2, 3], "needs 4 elements"),
        ([2, -1], [1, 2], "negative"),
        ("2", [1, 2], "list of integers"),
        ([1.5], [1], "list of integers"),
        ([2, 2], [[1, 2], [3]], "not a regular array"),
        ([3136166391, 234382, 0], [], "out of bounds"),
        ([1] * 40, [1], "out of bounds"),
    ],
)
def test_shape_errors(shape, data, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match=match):
        codec.decode_json("x", "FP64", shape, data)


def test_ints_are_accepted_for_floats_and_bytes_decode() -> None:
    assert codec.decode_json("x", "FP64", [3], [1, 2, 3]).dtype == np.float64
    assert codec.decode_json("x", "BYTES", [2], ["a", "b"]).tolist() == ["a", "b"]
    assert codec.decode_json("x", "FP32", [0, 4], []).shape == (0, 4)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.array([1, -2, 3], dtype=np.int64),
        np.array([True, False]),
        np.array([b"ab", b"", "ü".encode()], dtype=object),
        np.arange(4, dtype=np.float16),
    ],
)
def test_binary_roundtrip(array: np.ndarray) -> None:
    datatype, shape, raw = codec.encode_binary(array)
    back = codec.decode_binary("x", datatype, shape, raw)
    assert back.shape == array.shape
    assert back.tolist() == array.tolist()


def test_binary_size_mismatch_and_truncated_bytes() -> None:
    with pytest.raises(InvalidInput, match="needs 16 bytes"):
        codec.decode_binary("x", "FP32", [4], b"\x00" * 15)
    with pytest.raises(InvalidInput, match="runs past"):
        codec.decode_binary("x", "BYTES", [1], b"\x05\x00\x00\x00ab")


def test_encode_json_of_strings_and_numbers() -> None:
    assert codec.encode_json(np.array(["a", "b"], dtype=object)) == ("BYTES", [2], ["a", "b"])
    assert codec.encode_json(np.array([[1, 2]], dtype=np.int32)) == ("INT32", [1, 2], [1, 2])
