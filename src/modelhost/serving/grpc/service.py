"""Binds the servicer to the official OIP v2 method paths, ``/inference.GRPCInferenceService/<Method>``.

Our proto declares the messages in a package of its own (see protos/oip_v2.proto for why); message
names never travel on the wire, so registering the handlers under the official service name is all
it takes for every OIP v2 client (tritonclient, KServe's SDK, grpcurl with the spec's proto) to work.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from modelhost.errors import ModelhostError
from modelhost.serving.grpc.errors import status_code_for
from modelhost.serving.grpc.protos import oip_v2_pb2 as pb

log = logging.getLogger(__name__)

SERVICE_NAME = "inference.GRPCInferenceService"
_DESCRIPTOR = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
# method name -> (request class, response class); every request/response type is a top-level message.
METHODS: dict[str, tuple[type[Message], type[Message]]] = {
    m.name: (getattr(pb, m.input_type.name), getattr(pb, m.output_type.name)) for m in _DESCRIPTOR.methods
}
# Bidirectional streaming methods; the others are unary.
STREAMING = {m.name for m in _DESCRIPTOR.methods if m.client_streaming and m.server_streaming}

Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def _guarded(name: str, method: Handler) -> Handler:
    """Answer modelhost errors with their status code and message; never leak a traceback."""

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(request, context)
        except ModelhostError as exc:
            await context.abort(status_code_for(exc), exc.message)
        except Exception as exc:
            # context.abort raises an exception of grpc's own that must pass through untouched.
            if isinstance(exc, grpc.aio.AbortError):
                raise
            log.exception("unhandled error in gRPC %s", name)
            await context.abort(
                grpc.StatusCode.INTERNAL, f"internal server error ({type(exc).__name__}); see the server log"
            )

    return call


def generic_handler(servicer: object) -> grpc.GenericRpcHandler:
    """The handler of every declared method, each calling ``servicer.<Method>(request, context)``."""
    handlers = {}
    for name, (req, resp) in METHODS.items():
        if name in STREAMING:
            # Streams report errors per message (ModelStreamInferResponse.error_message) themselves.
            handlers[name] = grpc.stream_stream_rpc_method_handler(
                getattr(servicer, name),
                request_deserializer=req.FromString,
                response_serializer=resp.SerializeToString,
            )
        else:
            handlers[name] = grpc.unary_unary_rpc_method_handler(
                _guarded(name, getattr(servicer, name)),
                request_deserializer=req.FromString,
                response_serializer=resp.SerializeToString,
            )
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


class InferenceStub:
    """Client side for tests, benchmarks and scripts: ``InferenceStub(channel).ModelInfer(request)``.

    Works with a ``grpc.Channel`` (blocking calls) or a ``grpc.aio.Channel`` (awaitable calls).
    """

    def __init__(self, channel: grpc.Channel | grpc.aio.Channel) -> None:
        self._calls: dict[str, Any] = {
            name: (channel.stream_stream if name in STREAMING else channel.unary_unary)(
                f"/{SERVICE_NAME}/{name}",
                request_serializer=req.SerializeToString,
                response_deserializer=resp.FromString,
            )
            for name, (req, resp) in METHODS.items()
        }

    def __getattr__(self, name: str) -> Any:
        try:
            return self._calls[name]
        except KeyError:
            raise AttributeError(f"GRPCInferenceService has no method {name!r}") from None
