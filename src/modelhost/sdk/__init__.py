"""The modelhost Python SDK: ``Client`` (sync) and ``AsyncClient`` over every REST capability of the
server, with typed results, the server's error tree, and retries with backoff (docs/sdk.md)."""

from modelhost.sdk.client import AsyncClient, AsyncStream, Client, Stream
from modelhost.sdk.errors import ServerUnreachable, raise_for
from modelhost.sdk.spec import RetryPolicy
from modelhost.sdk.types import InferResult

__all__ = [
    "AsyncClient",
    "AsyncStream",
    "Client",
    "InferResult",
    "RetryPolicy",
    "ServerUnreachable",
    "Stream",
    "raise_for",
]
