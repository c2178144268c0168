"""Our proto is wire-compatible with the official one: same field numbers, types and cardinality as
the stubs tritonclient ships (package ``inference``), and both load in one process."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import Descriptor

from modelhost.serving.grpc.protos import oip_v2_pb2 as ours
from modelhost.serving.grpc.service import METHODS, SERVICE_NAME

official = pytest.importorskip("tritonclient.grpc.service_pb2")


def _fields(d: Descriptor) -> dict[str, tuple[int, int, bool]]:
    return {f.name: (f.number, f.type, f.is_repeated) for f in d.fields}


def _assert_same(mine: Descriptor, theirs: Descriptor) -> None:
    assert _fields(mine).items() <= _fields(theirs).items(), mine.full_name
    for nested in mine.nested_types:
        _assert_same(nested, theirs.nested_types_by_name[nested.name])


@pytest.mark.parametrize("name", sorted(ours.DESCRIPTOR.message_types_by_name))
def test_messages_match_the_official_proto(name: str) -> None:
    _assert_same(ours.DESCRIPTOR.message_types_by_name[name], official.DESCRIPTOR.message_types_by_name[name])


def test_methods_are_the_official_ones() -> None:
    service = official.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == SERVICE_NAME
    for name, (req, resp) in METHODS.items():
        method = service.methods_by_name[name]
        assert (method.input_type.name, method.output_type.name) == (
            req.DESCRIPTOR.name,
            resp.DESCRIPTOR.name,
        )
    assert {"ModelInfer", "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload"} <= set(METHODS)
