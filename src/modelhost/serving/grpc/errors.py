"""The one mapping from the modelhost error tree to gRPC status codes (REST's is serving/errors.py).

Keyed by the error's HTTP status so that error classes added later map without an edit here.
"""

from __future__ import annotations

import grpc

from modelhost.errors import ModelhostError

_BY_HTTP_STATUS: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


def status_code_for(exc: ModelhostError) -> grpc.StatusCode:
    """The gRPC status code of a modelhost error (INTERNAL for anything not a client mistake)."""
    return _BY_HTTP_STATUS.get(exc.status_code, grpc.StatusCode.INTERNAL)
