"""SDK gateway methods and error mapping, against a fake transport (the real server is in e2e)."""

from __future__ import annotations

import json

import httpx
import pytest

from modelhost.client import Client
from modelhost.errors import QuotaExceeded, RateLimited, Unauthorized


def _client(handler) -> Client:  # type: ignore[no-untyped-def]
    # retries off: these tests check what one answer maps to (retries: tests/sdk/test_retries.py)
    return Client(
        "http://test",
        api_key="mh_live_0123456789ab_" + "s" * 43,
        transport=httpx.MockTransport(handler),
        max_retries=0,
    )


def test_429_keeps_retry_after_and_ratelimit_headers() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"].startswith("Bearer mh_live_")
        if request.url.path.endswith("/infer"):
            return httpx.Response(
                429,
                json={"error": "rate limit reached for key k: rpm = 2 requests; retry in 7 s"},
                headers={"Retry-After": "7", "x-ratelimit-remaining-requests": "0"},
            )
        return httpx.Response(429, json={"error": "quota exhausted for key k: budget_total = 1 (no reset)"})

    with _client(handler) as c:
        with pytest.raises(RateLimited) as exc_info:
            c.infer_request("iris", {"inputs": []})
        assert not isinstance(exc_info.value, QuotaExceeded)
        assert exc_info.value.headers == {"retry-after": "7", "x-ratelimit-remaining-requests": "0"}
        with pytest.raises(QuotaExceeded):
            c.list_keys()


def test_key_usage_and_audit_calls() -> None:
    seen: list[tuple[str, str, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, str(request.url), request.content))
        if request.url.path == "/api/v1/usage" and request.url.params.get("format") == "csv":
            return httpx.Response(200, text="key_id,model\n", headers={"content-type": "text/csv"})
        if request.url.path == "/api/v1/keys/abc/revoke":
            return httpx.Response(401, json={"error": "invalid API key"})
        return httpx.Response(
            200, json=[] if request.method == "GET" else {"key": "mh_live_x", "key_id": "k1", "name": "svc"}
        )

    with _client(handler) as c:
        assert c.create_key("svc", ["infer"], limits={"rpm": 5})["key"] == "mh_live_x"
        assert c.usage(model="iris", since="2026-11-01") == []
        assert c.usage_csv(model="iris").startswith("key_id,model")
        assert c.audit(action="key.create", limit=5) == []
        with pytest.raises(Unauthorized):
            c.revoke_key("abc")
    assert json.loads(seen[0][2]) == {
        "name": "svc",
        "scopes": ["infer"],
        "owner": "",
        "expires_at": None,
        "limits": {"rpm": 5},
    }
    assert seen[1][1] == "http://test/api/v1/usage?model=iris&since=2026-11-01"
    assert seen[3][1] == "http://test/api/v1/audit?limit=5&action=key.create"
