"""Former home of the SDK, kept so ``from modelhost.client import Client`` goes on working; the SDK
lives in ``modelhost.sdk`` (``from modelhost import Client, AsyncClient``)."""

from modelhost.sdk import AsyncClient, Client, InferResult
from modelhost.sdk.errors import raise_for as _raise_for

__all__ = ["AsyncClient", "Client", "InferResult", "_raise_for"]
