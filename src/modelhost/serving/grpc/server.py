"""Start and stop the gRPC server next to the HTTP one, in the same event loop and over the same
DataPlane (serving/app.py's lifespan calls this)."""

from __future__ import annotations

import logging

import grpc

from modelhost.config import Settings
from modelhost.dataplane.plane import DataPlane
from modelhost.errors import ModelhostError
from modelhost.serving.grpc.service import generic_handler
from modelhost.serving.grpc.servicer import InferenceServicer

log = logging.getLogger(__name__)

# Seconds in-flight calls get to finish when the server stops.
STOP_GRACE_S = 5.0


class GrpcStartError(ModelhostError):
    """The gRPC port could not be bound (in use, or a bad host)."""


def grpc_address(host: str, port: int) -> str:
    """``host:port`` as gRPC wants it (IPv6 literals in brackets)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


class GrpcServer:
    """The OIP v2 gRPC service on its own port; ``port`` is the one actually bound."""

    def __init__(self, server: grpc.aio.Server, address: str, port: int) -> None:
        self.server = server
        self.address = address
        self.port = port

    @classmethod
    async def start(cls, plane: DataPlane, settings: Settings, port: int | None = None) -> GrpcServer:
        """Bind ``settings.host`` at ``port`` (default ``settings.grpc_port``; 0 here = any free port)."""
        limit = settings.grpc_max_message_bytes
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                # gRPC shares a port between processes by default: a second server would then get
                # half the traffic silently instead of failing to start.
                ("grpc.so_reuseport", 0),
            ]
        )
        server.add_generic_rpc_handlers((generic_handler(InferenceServicer(plane)),))
        address = grpc_address(settings.host, settings.grpc_port if port is None else port)
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise GrpcStartError(
                f"cannot serve gRPC on {address} ({exc}); set MODELHOST_GRPC_PORT to a free port, "
                "or disable gRPC with MODELHOST_GRPC_PORT=0 / --no-grpc"
            ) from None
        await server.start()
        log.info("OIP v2 gRPC service on %s", grpc_address(settings.host, bound))
        return cls(server, address, bound)

    async def stop(self) -> None:
        await self.server.stop(STOP_GRACE_S)
