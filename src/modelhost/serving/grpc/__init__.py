"""Open Inference Protocol v2 over gRPC (the ``grpc`` extra): proto, generated module, servicer."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from modelhost.config import Settings

if TYPE_CHECKING:
    from modelhost.dataplane.plane import DataPlane
    from modelhost.serving.grpc.server import GrpcServer

log = logging.getLogger(__name__)


async def start_if_enabled(plane: DataPlane, settings: Settings) -> GrpcServer | None:
    """Start the gRPC service unless ``grpc_port`` is 0; without grpcio installed, warn and go on."""
    if settings.grpc_port == 0:
        return None
    try:
        from modelhost.serving.grpc.server import GrpcServer
    except ImportError as exc:
        log.warning("gRPC disabled: %s (install modelhost[grpc])", exc)
        return None
    return await GrpcServer.start(plane, settings)
