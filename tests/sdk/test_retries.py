"""Retry timing and error mapping with fake transports (httpx.MockTransport): the waits are recorded,
never slept."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from modelhost import AsyncClient, Client
from modelhost.errors import InvalidInput, ModelNotReady, QuotaExceeded, RateLimited
from modelhost.sdk import RetryPolicy, ServerUnreachable
from modelhost.sdk import client as sdk_client
from modelhost.sdk.spec import parse_retry_after

Handler = Callable[[httpx.Request], httpx.Response]
READY = {"name": "modelhost", "version": "1", "extensions": []}


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    seen: list[float] = []

    async def asleep(seconds: float) -> None:
        seen.append(seconds)

    monkeypatch.setattr(sdk_client, "_sleep", seen.append)
    monkeypatch.setattr(sdk_client, "_asleep", asleep)
    return seen


def _scripted(*answers: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        answer = answers[min(len(calls), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler, calls


def _limited(retry_after: str | None = "3") -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return httpx.Response(429, json={"error": "rate limit reached for key k: rpm = 2"}, headers=headers)


def test_429_with_retry_after_then_success(waits: list[float]) -> None:
    handler, calls = _scripted(_limited("3"), httpx.Response(200, json=READY))
    with Client("http://test", transport=httpx.MockTransport(handler), api_key="mh_live_x") as c:
        assert c.server_metadata().name == "modelhost"
    assert len(calls) == 2 and waits == [3.0]
    assert all(r.headers["authorization"] == "Bearer mh_live_x" for r in calls)


def test_gives_up_after_max_retries_with_exponential_jittered_backoff(waits: list[float]) -> None:
    handler, calls = _scripted(httpx.Response(503, json={"error": "model 'iris' is loading"}))
    c = Client("http://test", transport=httpx.MockTransport(handler), max_retries=3, backoff=1.0)
    with c, pytest.raises(ModelNotReady) as exc_info:
        c.model_metadata("iris")
    assert exc_info.value.status_code == 503 and "loading" in exc_info.value.message
    assert len(calls) == 4 and len(waits) == 3
    for attempt, wait in enumerate(waits):  # equal jitter: between half and all of 1, 2, 4 s
        assert 2**attempt / 2 <= wait <= 2**attempt


def test_quota_client_errors_and_long_retry_after_are_not_retried(waits: list[float]) -> None:
    quota = httpx.Response(429, json={"error": "quota exhausted for key k: requests_per_day = 10"})
    handler, calls = _scripted(quota)
    with Client("http://test", transport=httpx.MockTransport(handler)) as c, pytest.raises(QuotaExceeded):
        c.status()
    handler, calls = _scripted(_limited("3600"))
    c = Client("http://test", transport=httpx.MockTransport(handler))
    with c, pytest.raises(RateLimited) as exc_info:
        c.status()
    assert exc_info.value.headers == {"retry-after": "3600"}
    handler, calls = _scripted(httpx.Response(400, json={"error": "bad"}))
    with Client("http://test", transport=httpx.MockTransport(handler)) as c, pytest.raises(InvalidInput):
        c.status()
    assert len(calls) == 1 and waits == []


def test_connection_errors_are_retried_then_raise_server_unreachable(waits: list[float]) -> None:
    handler, calls = _scripted(httpx.ConnectError("refused"), httpx.Response(200, json=READY))
    with Client("http://test", transport=httpx.MockTransport(handler), backoff=0.1) as c:
        assert c.server_metadata().version == "1"
    assert len(calls) == 2 and len(waits) == 1
    # a broken connection after the request was sent is not retried for a POST (it may have run)
    handler, calls = _scripted(httpx.ReadError("reset"))
    with Client("http://test", transport=httpx.MockTransport(handler)) as c, pytest.raises(ServerUnreachable):
        c.infer_request("iris", {"inputs": []})
    assert len(calls) == 1
    handler, calls = _scripted(httpx.ConnectError("refused"))
    c = Client("http://test", transport=httpx.MockTransport(handler), max_retries=0)
    with c, pytest.raises(ServerUnreachable, match="cannot reach http://test"):
        c.is_live()
    assert len(calls) == 1


def _sse(*events: bytes) -> bytes:
    return b"".join(b"data: " + e + b"\n\n" for e in events)


CHUNK = b'{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"Hi"}}]}'
BROKEN = b'{"error":{"message":"model crashed","type":"server_error","param":null,"code":"internal_error"}}'


def test_stream_retried_before_the_first_byte_never_after(waits: list[float]) -> None:
    ok = httpx.Response(
        200, content=_sse(CHUNK, CHUNK, b"[DONE]"), headers={"content-type": "text/event-stream"}
    )
    handler, calls = _scripted(_limited("1"), ok)
    with Client("http://test", transport=httpx.MockTransport(handler)) as c:
        assert [chunk.text for chunk in c.chat_stream("m", "hi")] == ["Hi", "Hi"]
    assert len(calls) == 2 and waits == [1.0]
    # an error event after chunks were delivered raises, and nothing is sent again
    broken = httpx.Response(200, content=_sse(CHUNK, BROKEN), headers={"content-type": "text/event-stream"})
    handler, calls = _scripted(broken, ok)
    with Client("http://test", transport=httpx.MockTransport(handler)) as c:
        got: list[str] = []
        with pytest.raises(Exception, match="model crashed") as exc_info:
            for chunk in c.chat_stream("m", "hi"):
                got.append(chunk.text)
    assert got == ["Hi"] and len(calls) == 1 and exc_info.value.status_code == 500  # type: ignore[attr-defined]


def test_async_client_retries_the_same_way(waits: list[float]) -> None:
    handler, calls = _scripted(_limited("2"), httpx.Response(503, json={"error": "loading"}),
                               httpx.Response(200, json=READY))  # fmt: skip

    async def main() -> str:
        async with AsyncClient("http://test", transport=httpx.MockTransport(handler), backoff=0.2) as c:
            meta = await c.server_metadata()
            with pytest.raises(RateLimited):
                await AsyncClient("http://test", transport=httpx.MockTransport(_scripted(_limited())[0]),
                                  retry=RetryPolicy(max_retries=0)).status()  # fmt: skip
            return meta.name

    assert asyncio.run(main()) == "modelhost"
    assert len(calls) == 3 and waits[0] == 2.0 and 0.1 <= waits[1] <= 0.4


def test_retry_after_parsing_and_env_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (
        parse_retry_after("7") == 7.0 and parse_retry_after("-1") == 0.0 and parse_retry_after("soon") is None
    )
    assert 0 <= (parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") or 0) < 1  # a past date: now
    monkeypatch.setenv("MODELHOST_URL", "http://example:9000/")
    monkeypatch.setenv("MODELHOST_API_KEY", "mh_live_env")
    c = Client()
    assert c.url == "http://example:9000" and c._headers["Authorization"] == "Bearer mh_live_env"
    assert Client("http://other", api_key="mh_live_arg")._headers["Authorization"] == "Bearer mh_live_arg"
