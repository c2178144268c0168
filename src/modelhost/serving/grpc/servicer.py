"""The OIP v2 GRPCInferenceService over the DataPlane: translation only, like serving/rest/v2.py."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from modelhost.dataplane.plane import DataPlane
from modelhost.errors import InvalidInput, ModelhostError
from modelhost.serving.grpc import convert
from modelhost.serving.grpc.protos import oip_v2_pb2 as pb

Context: TypeAlias = grpc.aio.ServicerContext
log = logging.getLogger(__name__)


def _model_name(name: str) -> str:
    if not name:
        raise InvalidInput("the model name is required")
    return name


def _version(version: str) -> str | None:
    # proto3 has no "unset" for strings: an empty version means the model's default version.
    return version or None


class InferenceServicer:
    """One method per RPC; errors are raised from modelhost.errors and mapped in service.py."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    # --- health and metadata --------------------------------------------------------------------

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.plane.live())

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.plane.ready())

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context) -> pb.ModelReadyResponse:
        _, ready = await self.plane.model_ready(_model_name(request.name), _version(request.version))
        return pb.ModelReadyResponse(ready=ready)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        meta = self.plane.server_metadata()
        return pb.ServerMetadataResponse(
            name=meta["name"], version=meta["version"], extensions=list(meta["extensions"])
        )

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        meta = await self.plane.model_metadata(_model_name(request.name), _version(request.version))
        return convert.model_metadata_message(meta)

    # --- inference ----------------------------------------------------------------------------------

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context) -> pb.ModelInferResponse:
        name = _model_name(request.model_name)
        infer_request, want_raw = convert.decode_infer_request(request)
        with self.plane.activity:  # counted with the HTTP requests (a batcher's "alone in the server")
            response = await self.plane.infer(
                name, _version(request.model_version), infer_request, protocol="grpc"
            )
        return convert.encode_infer_response(response, want_raw)

    async def ModelStreamInfer(
        self, requests: AsyncIterator[pb.ModelInferRequest], context: Context
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Triton's streaming inference, one request at a time, answers in order; a failing request
        gets ``error_message`` (and its id) while the stream goes on, as Triton clients expect."""
        async for request in requests:
            try:
                response = await self.ModelInfer(request, context)
            except ModelhostError as exc:
                message = exc.message
            except Exception as exc:
                log.exception("unhandled error in gRPC ModelStreamInfer")
                message = f"internal server error ({type(exc).__name__}); see the server log"
            else:
                yield pb.ModelStreamInferResponse(infer_response=response)
                continue
            failed = pb.ModelInferResponse(
                model_name=request.model_name, model_version=request.model_version, id=request.id
            )
            yield pb.ModelStreamInferResponse(error_message=message, infer_response=failed)

    # --- model repository extension -------------------------------------------------------------------

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Context
    ) -> pb.RepositoryIndexResponse:
        entries = await self.plane.repository_index(ready_only=request.ready)
        return pb.RepositoryIndexResponse(
            models=[
                pb.RepositoryIndexResponse.ModelIndex(
                    name=e["name"], version=e["version"], state=e["state"], reason=e["reason"]
                )
                for e in entries
            ]
        )

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Context
    ) -> pb.RepositoryModelLoadResponse:
        await self.plane.load(_model_name(request.model_name))
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Context
    ) -> pb.RepositoryModelUnloadResponse:
        await self.plane.unload(_model_name(request.model_name))
        return pb.RepositoryModelUnloadResponse()
