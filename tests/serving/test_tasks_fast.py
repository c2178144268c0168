"""The /v1/translations fast path (serving/rest/tasks_fast.py): taken for a valid JSON request, the
FastAPI route for anything else, and the same answers (body, status, headers) either way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from modelhost.gateway.keys import KeyService
from modelhost.registry import Registry
from modelhost.serving.app import create_app
from modelhost.serving.rest import tasks_fast

PATH = "/v1/translations"
BODY = {"model": "translate", "source": "en", "target": "pt", "text": "The cat is on the table."}


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Models the fast path translated for (the route calls tasks.translate, not this module's name)."""
    calls: list[str] = []
    real = tasks_fast.translate

    async def counting(plane: Any, request: Any) -> Any:
        calls.append(request.model)
        return await real(plane, request)

    monkeypatch.setattr(tasks_fast, "translate", counting)
    return calls


@pytest.fixture(scope="module")
def keyed(task_registry: Registry) -> Iterator[tuple[TestClient, KeyService]]:
    s = task_registry.settings.model_copy(update={"auth": "keys"})
    with TestClient(create_app(s, registry=task_registry)) as c:
        yield c, KeyService(task_registry.session, s)


def _both(c: TestClient, **kw: Any) -> tuple[Any, Any]:
    """The same request through the fast path and through the route (forced by an override)."""
    fast = c.post(PATH, **kw)
    app: Any = c.app
    app.dependency_overrides[object] = object  # any override sends the request to the FastAPI route
    try:
        slow = c.post(PATH, **kw)
    finally:
        app.dependency_overrides.clear()
    return fast, slow


def _same(fast: Any, slow: Any) -> None:
    assert fast.status_code == slow.status_code
    a, b = fast.json(), slow.json()
    a.pop("latency_ms", None), b.pop("latency_ms", None)
    assert a == b
    assert fast.headers["content-type"] == slow.headers["content-type"]


def test_a_valid_request_takes_the_fast_path(task_client: TestClient, spy: list[str]) -> None:
    r = task_client.post(PATH, json=BODY, headers={"x-request-id": "t-1"})
    assert r.status_code == 200, r.text
    assert "gato" in r.json()["data"][0]["text"].lower() and r.headers["x-request-id"] == "t-1"
    assert spy == ["translate"]


@pytest.mark.parametrize(
    ("kw", "status", "needle", "fast"),
    [
        ({"json": BODY}, 200, None, True),
        ({"json": {**BODY, "text": ["Good morning.", "I like to read books."]}}, 200, None, True),
        ({"json": {**BODY, "model": "nope"}}, 404, "nope", True),
        ({"json": {**BODY, "target": "de"}}, 400, "en-de", True),
        ({"json": {**BODY, "model": "efficientnet"}}, 400, None, True),
        ({"json": {**BODY, "text": ["ok", " "]}}, 400, "empty", False),
        ({"json": {**BODY, "beam": 4}}, 400, "unsupported parameter 'beam'", False),
        ({"content": b"{nope", "headers": {"content-type": "application/json"}}, 400, None, False),
        ({"content": b'{"model": "translate"}', "headers": {"content-type": "text/plain"}}, 400, None, False),
    ],
)
def test_fast_path_and_route_answer_alike(
    task_client: TestClient, spy: list[str], kw: dict[str, Any], status: int, needle: str | None, fast: bool
) -> None:
    a, b = _both(task_client, **kw)
    _same(a, b)
    assert a.status_code == status
    if status != 200:
        assert set(a.json()["error"]) == {"message", "type", "param", "code"}
    if needle is not None:
        assert needle in a.json()["error"]["message"]
    assert spy == ([kw["json"]["model"]] if fast else [])


def test_truncated_json_names_no_field(task_client: TestClient) -> None:
    r = task_client.post(
        PATH, content=b'{"model": "translate", "text":', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] is None  # not the character offset pydantic reports as the location
    assert "not valid JSON at character" in error["message"]


def test_gateway_refusals_match(keyed: tuple[TestClient, KeyService]) -> None:
    c, keys = keyed
    fast, slow = _both(c, json=BODY)
    assert fast.status_code == 401
    _same(fast, slow)
    _, other = keys.create("other-model", ["infer:efficientnet"])
    fast, slow = _both(c, json=BODY, headers={"X-API-Key": other})
    assert fast.status_code == 403 and fast.json()["error"]["type"] == "permission_error"
    _same(fast, slow)
    _, limited = keys.create("limited", ["infer"], limits={"rpm": 2})
    h = {"Authorization": f"Bearer {limited}"}
    fast, slow = _both(c, json=BODY, headers=h)
    assert fast.status_code == slow.status_code == 200
    assert fast.headers["x-ratelimit-remaining-requests"] == "1"
    assert slow.headers["x-ratelimit-remaining-requests"] == "0"
    r = c.post(PATH, json=BODY, headers=h)
    assert (
        r.status_code == 429
        and r.json()["error"]["type"] == "rate_limit_error"
        and "retry-after" in r.headers
    )
    lim_id = keys.key_id_of(limited)
    assert (
        f'modelhost_gateway_denials_total{{key_id="{lim_id}",reason="rate_limited"}} 1.0'
        in c.get("/metrics").text
    )


def test_body_limits_request_ids_and_access_log_alike(
    task_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    """Answered ahead of FastAPI's stack, the fast path does the edge's work itself: 413 for a body
    that streams past the limit (OpenAI's shape, as the route's), a request id per request, one
    access-log record; a declared length over the limit goes to the route, which refuses it alike."""
    s = task_registry.settings.model_copy(update={"max_body_bytes": 4096, "access_log": True})

    def chunks() -> Iterator[bytes]:  # no content-length: the limit applies while the body streams in
        yield b" " * 3000
        yield b" " * 3000

    with TestClient(create_app(s, registry=task_registry)) as c, caplog.at_level("INFO", "modelhost.access"):
        json_h = {"content-type": "application/json"}
        fast = c.post(PATH, content=chunks(), headers=json_h)
        app: Any = c.app
        app.dependency_overrides[object] = object  # the FastAPI route (a generator is read only once)
        try:
            slow = c.post(PATH, content=chunks(), headers=json_h)
        finally:
            app.dependency_overrides.clear()
        declared = c.post(PATH, content=b" " * 5000, headers={"content-type": "application/json"})
        caplog.clear()
        ok, ok_slow = _both(c, json=BODY)
        given = c.post(PATH, json=BODY, headers={"x-request-id": "tr-1"})
    assert fast.status_code == slow.status_code == declared.status_code == 413
    assert fast.json() == slow.json() == declared.json()
    assert fast.json()["error"]["code"] == "payload_too_large"
    assert "MODELHOST_MAX_BODY_BYTES" in fast.json()["error"]["message"]
    ids = [r.headers["x-request-id"] for r in (fast, ok, ok_slow)]
    assert all(len(i) == 32 for i in ids) and len(set(ids)) == 3
    assert given.headers["x-request-id"] == "tr-1"
    records = [
        (r.getMessage(), getattr(r, "status", None)) for r in caplog.records if r.name == "modelhost.access"
    ]
    assert records == [(f"POST {PATH} 200", 200)] * 3
