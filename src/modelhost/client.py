"""Python SDK: a small httpx client for the Open Inference Protocol v2 and the registry admin API.

from modelhost.client import Client
c = Client("http://127.0.0.1:8000")
result = c.infer("iris@production", [[5.1, 3.5, 1.4, 0.2]])
result["predict"]  # numpy array
"""

from __future__ import annotations

import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import orjson

from modelhost.dataplane import codec
from modelhost.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    ModelhostError,
    ModelNotReady,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    RateLimited,
    Unauthorized,
)
from modelhost.runtimes.base import DATATYPE_TO_NUMPY

_BY_STATUS: dict[int, type[ModelhostError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
    503: ModelNotReady,
}


@dataclass
class InferResult(Mapping[str, np.ndarray]):
    """Outputs by name as numpy arrays, plus the version that answered."""

    model_name: str
    model_version: str
    outputs: dict[str, np.ndarray]
    id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.outputs[key]

    def __iter__(self):
        return iter(self.outputs)

    def __len__(self) -> int:
        return len(self.outputs)


def _raise_for(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    try:
        err = resp.json().get("error")
        message = err.get("message") if isinstance(err, dict) else err
    except (ValueError, AttributeError):
        message = None
    text = str(message or f"HTTP {resp.status_code}: {resp.text[:200]}")
    if resp.status_code == 429:
        # keeps Retry-After and x-ratelimit-* so callers can back off
        cls429 = QuotaExceeded if "quota" in text else RateLimited
        raise cls429(
            text, {k: v for k, v in resp.headers.items() if k.startswith(("retry-after", "x-ratelimit"))}
        )
    cls = _BY_STATUS.get(resp.status_code, ModelhostError)
    raise cls(text)


class Client:
    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        admin_token: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``api_key``: an ``mh_live_...`` key sent as ``Authorization: Bearer``; needed unless the
        server runs without auth (loopback), and an admin key for the registry and key methods.
        ``admin_token`` is the former name of the same argument."""
        key = api_key or admin_token
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self._http.request(method, path, **kwargs)
        _raise_for(resp)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    @staticmethod
    def _model_path(name: str, version: str | int | None) -> str:
        path = f"/v2/models/{quote(name, safe='@')}"
        return f"{path}/versions/{version}" if version is not None else path

    # --- health and metadata --------------------------------------------------------------------

    def is_live(self) -> bool:
        return self._http.get("/v2/health/live").status_code == 200

    def is_ready(self) -> bool:
        return self._http.get("/v2/health/ready").status_code == 200

    def server_metadata(self) -> dict[str, Any]:
        return dict(self._call("GET", "/v2"))

    def model_metadata(self, name: str, version: str | int | None = None) -> dict[str, Any]:
        return dict(self._call("GET", self._model_path(name, version)))

    def is_model_ready(self, name: str, version: str | int | None = None) -> bool:
        return self._http.get(self._model_path(name, version) + "/ready").status_code == 200

    def list_models(self, ready_only: bool = False) -> list[dict[str, Any]]:
        """Every registered version with its state (the repository index)."""
        return list(self._call("POST", "/v2/repository/index", json={"ready": ready_only}))

    def load(self, name: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/v2/repository/models/{quote(name, safe='@')}/load"))

    def unload(self, name: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/v2/repository/models/{quote(name, safe='@')}/unload"))

    # --- inference -------------------------------------------------------------------------------

    def infer(
        self,
        name: str,
        inputs: Mapping[str, Any] | Any,
        *,
        version: str | int | None = None,
        outputs: Sequence[str] | None = None,
        binary: bool = False,
        request_id: str | None = None,
    ) -> InferResult:
        """Run inference. ``inputs`` maps input names to array-likes; a bare array-like is sent as
        the model's single input (its name is read from the model metadata)."""
        if not isinstance(inputs, Mapping):
            meta = self.model_metadata(name, version)
            if len(meta["inputs"]) != 1:
                raise InvalidInput(f"model '{name}' takes {len(meta['inputs'])} inputs; pass a dict by name")
            spec = meta["inputs"][0]
            inputs = {spec["name"]: np.asarray(inputs, dtype=DATATYPE_TO_NUMPY.get(spec["datatype"]))}
        body: dict[str, Any] = {"inputs": []}
        blobs: list[bytes] = []
        for input_name, value in inputs.items():
            array = np.asarray(value)
            if binary:
                datatype, shape, raw = codec.encode_binary(array)
                body["inputs"].append(
                    {
                        "name": input_name,
                        "datatype": datatype,
                        "shape": shape,
                        "parameters": {"binary_data_size": len(raw)},
                    }
                )
                blobs.append(raw)
            else:
                datatype, shape, data = codec.encode_json(array)
                body["inputs"].append(
                    {"name": input_name, "datatype": datatype, "shape": shape, "data": data}
                )
        if outputs is not None:
            body["outputs"] = [{"name": o, "parameters": {"binary_data": binary}} for o in outputs]
        elif binary:
            body["parameters"] = {"binary_data_output": True}
        if request_id is not None:
            body["id"] = request_id
        header = orjson.dumps(body)
        headers = {"Content-Type": "application/json"}
        if binary:
            headers = {
                "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(len(header)),
            }
        resp = self._http.post(
            self._model_path(name, version) + "/infer", content=header + b"".join(blobs), headers=headers
        )
        _raise_for(resp)
        return self._decode(resp)

    def infer_request(
        self, name: str, request: dict[str, Any], *, version: str | int | None = None
    ) -> dict[str, Any]:
        """Send a ready-made OIP v2 JSON request; returns the JSON response as it came."""
        return dict(self._call("POST", self._model_path(name, version) + "/infer", json=request))

    @staticmethod
    def _decode(resp: httpx.Response) -> InferResult:
        content = resp.content
        n = resp.headers.get("inference-header-content-length")
        head, tail = (content[: int(n)], content[int(n) :]) if n is not None else (content, b"")
        body = orjson.loads(head)
        arrays: dict[str, np.ndarray] = {}
        offset = 0
        for out in body["outputs"]:
            size = (out.get("parameters") or {}).get("binary_data_size")
            if size is not None:
                arrays[out["name"]] = codec.decode_binary(
                    out["name"], out["datatype"], out["shape"], tail[offset : offset + size]
                )
                offset += size
            else:
                arrays[out["name"]] = codec.decode_json(
                    out["name"], out["datatype"], out["shape"], out["data"]
                )
        return InferResult(body["model_name"], str(body.get("model_version")), arrays, body.get("id"), body)

    # --- registry (admin token) ------------------------------------------------------------------------

    def register(
        self,
        name: str,
        path: str | Path,
        *,
        format: str | None = None,
        convert_onnx: bool = False,
        description: str = "",
        metrics: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        lineage: dict[str, Any] | None = None,
        task: str | None = None,
    ) -> dict[str, Any]:
        """Upload an artifact as a new version of ``name``; returns the version record. A directory
        (a transformers model) is sent as a tar archive; ``task`` picks its pipeline."""
        path = Path(path)
        form: dict[str, str] = {"description": description, "convert_onnx": str(convert_onnx).lower()}
        if format:
            form["format"] = format
        if task:
            form["task"] = task
        for key, value in (("metrics", metrics), ("params", params), ("tags", tags), ("lineage", lineage)):
            if value is not None:
                form[key] = orjson.dumps(value).decode()
        if path.is_dir():
            with tempfile.TemporaryDirectory(prefix="modelhost-upload-") as tmp:
                archive = Path(tmp) / f"{path.name}.tar"
                with tarfile.open(archive, "w") as tar:
                    for file in sorted(p for p in path.rglob("*") if p.is_file()):
                        rel = file.relative_to(path)
                        if not any(part.startswith(".") for part in rel.parts):
                            tar.add(file, arcname=f"{path.name}/{rel.as_posix()}")
                return self._upload(name, archive, form)
        return self._upload(name, path, form)

    def _upload(self, name: str, path: Path, form: dict[str, str]) -> dict[str, Any]:
        with open(path, "rb") as f:
            return dict(
                self._call(
                    "POST",
                    f"/api/v1/models/{quote(name)}/versions",
                    data=form,
                    files={"file": (path.name, f, "application/octet-stream")},
                )
            )

    def registered_models(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/models"))

    def versions(self, name: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/api/v1/models/{quote(name)}/versions"))

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        force: bool = False,
        protect: bool | None = None,
        reason: str = "",
    ) -> dict[str, Any]:
        body = {"version": version, "force": force, "protect": protect, "reason": reason}
        return dict(self._call("PUT", f"/api/v1/models/{quote(name)}/aliases/{quote(alias)}", json=body))

    def alias_history(self, name: str, alias: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/api/v1/models/{quote(name)}/aliases/{quote(alias)}/history"))

    # --- gateway (admin key) --------------------------------------------------------------------------

    def create_key(
        self,
        name: str,
        scopes: Sequence[str],
        *,
        owner: str = "",
        expires_at: str | None = None,
        limits: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create an API key; the answer's ``key`` is the only time the secret is shown."""
        body = {
            "name": name,
            "scopes": list(scopes),
            "owner": owner,
            "expires_at": expires_at,
            "limits": limits or {},
        }
        return dict(self._call("POST", "/api/v1/keys", json=body))

    def list_keys(self, include_revoked: bool = True) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/keys", params={"include_revoked": include_revoked}))

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/api/v1/keys/{quote(key_id)}/revoke"))

    def rotate_key(self, key_id: str) -> dict[str, Any]:
        """A new key (in ``key``) with the same name, scopes and limits; the old one is revoked."""
        return dict(self._call("POST", f"/api/v1/keys/{quote(key_id)}/rotate"))

    def usage(
        self,
        *,
        key_id: str | None = None,
        model: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> list[dict[str, Any]]:
        """Usage rows per key, model, version and day (days as YYYY-MM-DD)."""
        params = {
            k: v for k, v in {"key_id": key_id, "model": model, "since": since, "until": until}.items() if v
        }
        return list(self._call("GET", "/api/v1/usage", params=params))

    def usage_csv(self, **filters: str) -> str:
        resp = self._http.get("/api/v1/usage", params={**filters, "format": "csv"})
        _raise_for(resp)
        return resp.text

    def audit(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Audit entries, newest first."""
        params: dict[str, Any] = {"limit": limit}
        params.update({k: v for k, v in {"actor": actor, "action": action, "target": target}.items() if v})
        return list(self._call("GET", "/api/v1/audit", params=params))
