"""``modelhost predict``: one inference, in-process or against a server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from modelhost.cli.common import print_json, registry, run, settings
from modelhost.errors import InvalidInput

# --- predict --------------------------------------------------------------------------------------


def _load_json_arg(value: str) -> Any:
    """Parse --json: inline JSON, or '@path' to read a file."""
    if value.startswith("@"):
        try:
            value = Path(value[1:]).read_text()
        except OSError as exc:
            raise InvalidInput(f"cannot read {exc.filename}: {exc.strerror}") from None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--json is not valid JSON: {exc}") from None


def predict(
    name: Annotated[str, typer.Argument(help="Model reference: NAME or NAME@ALIAS.")],
    json_input: Annotated[
        str,
        typer.Option(
            "--json",
            help="OIP v2 request, or a bare array for a single-input model; '@file.json' reads a file.",
        ),
    ],
    version: Annotated[str | None, typer.Option(help="Exact version.")] = None,
    url: Annotated[
        str | None, typer.Option(help="Call this server instead of loading the model here.")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="MODELHOST_API_KEY", help="API key for --url (mh_live_...).", show_default=False),
    ] = None,
) -> None:
    """Run one inference, in-process by default or against a running server with --url."""

    def body() -> None:
        payload = _load_json_arg(json_input)
        if url:
            from modelhost.client import Client

            with Client(url, api_key=api_key) as client:
                if isinstance(payload, dict):
                    print_json(client.infer_request(name, payload, version=version))
                else:
                    print_json(client.infer(name, payload, version=version).raw)
            return
        print_json(asyncio.run(_predict_local(name, version, payload)))

    run(body)


async def _predict_local(name: str, version: str | None, payload: Any) -> Any:
    import orjson

    from modelhost.dataplane.plane import DataPlane
    from modelhost.dataplane.repository import ModelRepository
    from modelhost.serving.rest.v2 import decode_infer_request, encode_infer_response

    s = settings()
    reg = registry()
    plane = DataPlane(reg, ModelRepository(reg, s), s)
    if not isinstance(payload, dict):
        info = await plane.resolve(name, version)
        if len(info.signature.inputs) != 1:
            raise InvalidInput(
                f"model '{name}' takes {len(info.signature.inputs)} inputs; pass an OIP request"
            )
        spec = info.signature.inputs[0]
        import numpy as np

        shape = list(np.asarray(payload).shape)
        if len(shape) == len(spec.shape) - 1:
            payload, shape = [payload], [1, *shape]
        payload = {
            "inputs": [{"name": spec.name, "datatype": spec.datatype, "shape": shape, "data": payload}]
        }
    request, _all_binary, _binary_outputs = decode_infer_request(orjson.dumps(payload), None)
    try:
        resp = await plane.infer(name, version, request)
    finally:
        await plane.repository.unload_all()
    return orjson.loads(encode_infer_response(resp, False, set()).body)
