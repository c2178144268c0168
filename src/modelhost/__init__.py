"""modelhost: a self-hosted AI model as a service platform."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from modelhost.sdk import AsyncClient, Client

__all__ = ["AsyncClient", "Client", "__version__"]


def __getattr__(name: str) -> Any:
    # The SDK (httpx, numpy) is imported on first use, so `import modelhost` stays light for the server.
    if name in ("Client", "AsyncClient"):
        from modelhost import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'modelhost' has no attribute {name!r}")
