"""``Client`` (httpx.Client) and ``AsyncClient`` (httpx.AsyncClient): two thin transports over the
same operations. Each method is bound from a flow in ``ops_admin``/``ops_infer``; the transports only
send specs, retry, parse and stream."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Concatenate, Generic, ParamSpec, TypedDict, TypeVar, Unpack, cast

import httpx

from modelhost.errors import ModelhostError
from modelhost.sdk import ops_admin as adm
from modelhost.sdk import ops_infer as inf
from modelhost.sdk.errors import ServerUnreachable, error_from_response
from modelhost.sdk.spec import DONE, Chunks, Flow, RetryPolicy, Spec, sse_chunk, sse_data

DEFAULT_URL = "http://127.0.0.1:8000"
P = ParamSpec("P")
T = TypeVar("T")
C = TypeVar("C")
# Module-level so tests can replace them with fakes that record the waits.
_sleep = time.sleep
_asleep = asyncio.sleep


class ClientOptions(TypedDict, total=False):
    """Keyword options shared by ``Client`` and ``AsyncClient`` (see ``_Base.__init__``)."""

    api_key: str | None
    admin_token: str | None
    timeout: float
    max_retries: int
    backoff: float
    retry: RetryPolicy | None
    headers: dict[str, str] | None


class _Base:
    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        admin_token: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """``url`` defaults to ``$MODELHOST_URL``, then http://127.0.0.1:8000. ``api_key`` (an
        ``mh_live_...`` key sent as ``Authorization: Bearer``) defaults to ``$MODELHOST_API_KEY``; it
        is needed unless the server runs without auth (loopback), and must be an admin key for the
        registry, key, usage, audit, drift and status methods. ``admin_token`` is its former name.
        Retries: ``max_retries`` and ``backoff`` (first wait in seconds, doubling), or a whole
        ``RetryPolicy``; ``max_retries=0`` turns them off."""
        self.url = (url or os.environ.get("MODELHOST_URL") or DEFAULT_URL).rstrip("/")
        key = api_key or admin_token or os.environ.get("MODELHOST_API_KEY")
        self._headers = {**({"Authorization": f"Bearer {key}"} if key else {}), **(headers or {})}
        self.timeout = timeout
        self.retry = retry or RetryPolicy(max_retries=max_retries, backoff=backoff)

    def _build(self, http: httpx.Client | httpx.AsyncClient, spec: Spec[Any]) -> httpx.Request:
        return http.build_request(
            spec.method,
            self.url + spec.path,
            params=spec.params,
            json=spec.json,
            content=spec.content,
            data=spec.data,
            files=spec.files,
            headers={**self._headers, **spec.headers},
            timeout=self.timeout,
        )

    def _transport_wait(self, exc: httpx.TransportError, spec: Spec[Any], attempt: int) -> float:
        if attempt < self.retry.max_retries and self.retry.retryable_transport(exc, spec.method):
            return cast(float, self.retry.delay(attempt))
        raise ServerUnreachable(f"cannot reach {self.url}: {type(exc).__name__}: {exc}") from exc

    def _error_wait(self, exc: ModelhostError, attempt: int) -> float:
        if attempt < self.retry.max_retries and self.retry.retryable(exc):
            wait = self.retry.delay(attempt, getattr(exc, "headers", {}).get("retry-after"))
            if wait is not None:
                return wait
        raise exc


def _signature(op: Callable[..., Any], method: Callable[..., Any]) -> None:
    sig = inspect.signature(op)
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    bound = sig.replace(parameters=[self_param, *sig.parameters.values()], return_annotation=sig.empty)
    method.__signature__ = bound  # type: ignore[attr-defined]  # help() shows the parameters


# --- sync ---------------------------------------------------------------------------------------------


class Stream(Generic[C]):
    """Chunks of a streamed answer (SSE), read as they arrive; close it (or use ``with``) to stop
    early. ``headers`` has the answer's headers (x-ratelimit-*)."""

    def __init__(self, resp: httpx.Response, chunk: Callable[[Any], C]) -> None:
        self._resp, self._chunk = resp, chunk
        self.headers = resp.headers

    def __iter__(self) -> Iterator[C]:
        try:
            for line in self._resp.iter_lines():
                data = sse_data(line)
                if data is None:
                    continue
                if data == DONE:
                    break
                yield sse_chunk(data, self._chunk)
        finally:
            self._resp.close()

    def close(self) -> None:
        self._resp.close()

    def __enter__(self) -> Stream[C]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sync(op: Callable[P, Flow[T]]) -> Callable[Concatenate[Client, P], T]:
    @functools.wraps(op)
    def method(self: Client, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._drive(op(*args, **kwargs))

    _signature(op, method)
    return method


def _sync_stream(op: Callable[P, Flow[Chunks[C]]]) -> Callable[Concatenate[Client, P], Stream[C]]:
    return cast(Callable[Concatenate["Client", P], Stream[C]], _sync(op))


class Client(_Base):
    """Synchronous SDK over every REST capability of a modelhost server.

    >>> with Client("http://127.0.0.1:8000", api_key="mh_live_...") as c:
    ...     c.infer("iris@production", [[5.1, 3.5, 1.4, 0.2]])["predict"]
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(url, **options)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=self.timeout, transport=transport)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drive(self, flow: Flow[T]) -> T:
        result: Any = None
        try:
            while True:
                result = self._execute(flow.send(result))
        except StopIteration as stop:
            return cast(T, stop.value)
        finally:
            flow.close()

    def _execute(self, spec: Spec[Any]) -> Any:
        attempt = 0
        while True:
            try:
                resp = self._http.send(self._build(self._http, spec), stream=True)
            except httpx.TransportError as exc:
                wait = self._transport_wait(exc, spec, attempt)
            else:
                if spec.raw_status or resp.status_code < 400:
                    if spec.chunk is not None:
                        return Stream(resp, spec.chunk)
                    resp.read()
                    resp.close()
                    return spec.parse(resp)
                resp.read()
                resp.close()
                wait = self._error_wait(error_from_response(resp), attempt)
            _sleep(wait)
            attempt += 1
            if spec.rewind is not None:
                spec.rewind()

    # health and OIP v2
    is_live = _sync(inf.is_live)
    is_ready = _sync(inf.is_ready)
    is_model_ready = _sync(inf.is_model_ready)
    server_metadata = _sync(inf.server_metadata)
    model_metadata = _sync(inf.model_metadata)
    repository_index = _sync(inf.repository_index)
    list_models = _sync(inf.repository_index)  # former name of repository_index
    load = _sync(inf.load)
    unload = _sync(inf.unload)
    infer = _sync(inf.infer)
    infer_request = _sync(inf.infer_request)
    explain = _sync(inf.explain)
    # OpenAI-compatible and task routes
    chat = _sync(inf.chat)
    chat_stream = _sync_stream(inf.chat_stream)
    complete = _sync(inf.complete)
    complete_stream = _sync_stream(inf.complete_stream)
    embed = _sync(inf.embed)
    openai_models = _sync(inf.openai_models)
    transcribe = _sync(inf.transcribe)
    translate = _sync(inf.translate)
    summarize = _sync(inf.summarize)
    classify = _sync(inf.classify)
    # registry
    registered_models = _sync(adm.registered_models)
    get_model = _sync(adm.get_model)
    versions = _sync(adm.versions)
    get_version = _sync(adm.get_version)
    register = _sync(adm.register)
    aliases = _sync(adm.aliases)
    set_alias = _sync(adm.set_alias)
    delete_alias = _sync(adm.delete_alias)
    alias_history = _sync(adm.alias_history)
    rollback_alias = _sync(adm.rollback_alias)
    get_deployment = _sync(adm.get_deployment)
    update_deployment = _sync(adm.update_deployment)
    set_canary = _sync(adm.set_canary)
    remove_canary = _sync(adm.remove_canary)
    # gateway and operations
    create_key = _sync(adm.create_key)
    list_keys = _sync(adm.list_keys)
    get_key = _sync(adm.get_key)
    revoke_key = _sync(adm.revoke_key)
    rotate_key = _sync(adm.rotate_key)
    usage = _sync(adm.usage)
    usage_csv = _sync(adm.usage_csv)
    audit = _sync(adm.audit)
    drift = _sync(adm.drift)
    status = _sync(adm.status)
    metrics = _sync(adm.metrics)


# --- async --------------------------------------------------------------------------------------------


class AsyncStream(Generic[C]):
    """Chunks of a streamed answer, for ``async for``; ``aclose()`` (or ``async with``) stops early."""

    def __init__(self, resp: httpx.Response, chunk: Callable[[Any], C]) -> None:
        self._resp, self._chunk = resp, chunk
        self.headers = resp.headers

    async def __aiter__(self) -> AsyncIterator[C]:
        try:
            async for line in self._resp.aiter_lines():
                data = sse_data(line)
                if data is None:
                    continue
                if data == DONE:
                    break
                yield sse_chunk(data, self._chunk)
        finally:
            await self._resp.aclose()

    async def aclose(self) -> None:
        await self._resp.aclose()

    async def __aenter__(self) -> AsyncStream[C]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _async(op: Callable[P, Flow[T]]) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]:
    @functools.wraps(op)
    async def method(self: AsyncClient, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._drive(op(*args, **kwargs))

    _signature(op, method)
    return method


def _async_stream(
    op: Callable[P, Flow[Chunks[C]]],
) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, AsyncStream[C]]]:
    return cast(Callable[Concatenate["AsyncClient", P], Coroutine[Any, Any, AsyncStream[C]]], _async(op))


class AsyncClient(_Base):
    """The same methods as ``Client``, as coroutines (``await c.infer(...)``); streams are
    ``AsyncStream`` objects (``async for chunk in await c.chat_stream(...)``)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(url, **options)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=self.timeout, transport=transport)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _drive(self, flow: Flow[T]) -> T:
        result: Any = None
        try:
            while True:
                result = await self._execute(flow.send(result))
        except StopIteration as stop:
            return cast(T, stop.value)
        finally:
            flow.close()

    async def _execute(self, spec: Spec[Any]) -> Any:
        attempt = 0
        while True:
            try:
                resp = await self._http.send(self._build(self._http, spec), stream=True)
            except httpx.TransportError as exc:
                wait = self._transport_wait(exc, spec, attempt)
            else:
                if spec.raw_status or resp.status_code < 400:
                    if spec.chunk is not None:
                        return AsyncStream(resp, spec.chunk)
                    await resp.aread()
                    await resp.aclose()
                    return spec.parse(resp)
                await resp.aread()
                await resp.aclose()
                wait = self._error_wait(error_from_response(resp), attempt)
            await _asleep(wait)
            attempt += 1
            if spec.rewind is not None:
                spec.rewind()

    # health and OIP v2
    is_live = _async(inf.is_live)
    is_ready = _async(inf.is_ready)
    is_model_ready = _async(inf.is_model_ready)
    server_metadata = _async(inf.server_metadata)
    model_metadata = _async(inf.model_metadata)
    repository_index = _async(inf.repository_index)
    list_models = _async(inf.repository_index)  # former name of repository_index
    load = _async(inf.load)
    unload = _async(inf.unload)
    infer = _async(inf.infer)
    infer_request = _async(inf.infer_request)
    explain = _async(inf.explain)
    # OpenAI-compatible and task routes
    chat = _async(inf.chat)
    chat_stream = _async_stream(inf.chat_stream)
    complete = _async(inf.complete)
    complete_stream = _async_stream(inf.complete_stream)
    embed = _async(inf.embed)
    openai_models = _async(inf.openai_models)
    transcribe = _async(inf.transcribe)
    translate = _async(inf.translate)
    summarize = _async(inf.summarize)
    classify = _async(inf.classify)
    # registry
    registered_models = _async(adm.registered_models)
    get_model = _async(adm.get_model)
    versions = _async(adm.versions)
    get_version = _async(adm.get_version)
    register = _async(adm.register)
    aliases = _async(adm.aliases)
    set_alias = _async(adm.set_alias)
    delete_alias = _async(adm.delete_alias)
    alias_history = _async(adm.alias_history)
    rollback_alias = _async(adm.rollback_alias)
    get_deployment = _async(adm.get_deployment)
    update_deployment = _async(adm.update_deployment)
    set_canary = _async(adm.set_canary)
    remove_canary = _async(adm.remove_canary)
    # gateway and operations
    create_key = _async(adm.create_key)
    list_keys = _async(adm.list_keys)
    get_key = _async(adm.get_key)
    revoke_key = _async(adm.revoke_key)
    rotate_key = _async(adm.rotate_key)
    usage = _async(adm.usage)
    usage_csv = _async(adm.usage_csv)
    audit = _async(adm.audit)
    drift = _async(adm.drift)
    status = _async(adm.status)
    metrics = _async(adm.metrics)
