"""The console's JSON routes (/api/v1/console/...) and how its static files are served."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modelhost.config import Settings
from modelhost.console.routes import CSP, STATIC
from modelhost.gateway.keys import KeyService
from modelhost.registry import Registry
from modelhost.serving.app import create_app

ROW = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}


class Keys:
    def __init__(self, keys: KeyService) -> None:
        self.admin = keys.create("console-admin", ["admin"])[1]
        self.reader = keys.create("console-reader", ["models:read", "infer"])[1]
        self.infer_only = keys.create("console-infer", ["infer:iris"])[1]

    @staticmethod
    def auth(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def console(settings: Settings, iris_registry: Registry) -> Iterator[tuple[TestClient, Keys]]:
    s = settings.model_copy(update={"host": "0.0.0.0"})  # keys required
    keys = Keys(KeyService(iris_registry.session, s))
    with TestClient(create_app(s, registry=iris_registry)) as c:
        yield c, keys


def test_session_describes_the_key_without_its_secret(console: tuple[TestClient, Keys]) -> None:
    c, keys = console
    me = c.get("/api/v1/console/session", headers=keys.auth(keys.reader)).json()
    assert me["name"] == "console-reader"
    assert me["is_admin"] is False and me["can_read"] is True
    # The secret follows "mh_live_<key id>_" and may itself contain "_" (base64url).
    secret = keys.reader.removeprefix(f"mh_live_{me['key_id']}_")
    assert secret != keys.reader and keys.reader not in str(me) and secret not in str(me)
    assert c.get("/api/v1/console/session", headers=keys.auth(keys.admin)).json()["is_admin"] is True
    r = c.get("/api/v1/console/session")
    assert r.status_code == 401 and "error" in r.json()


def test_models_overview_is_readable_with_models_read_but_not_with_infer_only(
    console: tuple[TestClient, Keys],
) -> None:
    c, keys = console
    models = c.get("/api/v1/console/models", headers=keys.auth(keys.reader)).json()
    (iris,) = models
    assert [v["version"] for v in iris["versions"]] == [1, 2]
    assert {a["alias"]: a["version"] for a in iris["alias_list"]} == {"production": 1, "staging": 2}
    assert iris["versions"][0]["metrics"] == {"accuracy": 0.97}
    assert len(iris["versions"][0]["sha256"]) == 64
    assert iris["deployment"]["model"] == "iris"
    denied = c.get("/api/v1/console/models", headers=keys.auth(keys.infer_only))
    assert denied.status_code == 403 and "models:read" in denied.json()["error"]
    # the admin API itself stays admin only
    assert c.get("/api/v1/models", headers=keys.auth(keys.reader)).status_code == 403


def test_model_detail_has_alias_history(console: tuple[TestClient, Keys]) -> None:
    c, keys = console
    admin = keys.auth(keys.admin)
    assert (
        c.put("/api/v1/models/iris/aliases/production", json={"version": 2}, headers=admin).status_code == 200
    )
    assert c.post("/api/v1/models/iris/aliases/production/rollback", headers=admin).json()["version"] == 1
    detail = c.get("/api/v1/console/models/iris", headers=keys.auth(keys.reader)).json()
    production = next(a for a in detail["alias_list"] if a["alias"] == "production")
    moves = [(e["from_version"], e["to_version"]) for e in production["history"]]
    assert moves[-2:] == [(1, 2), (2, 1)]
    assert c.get("/api/v1/console/models/nope", headers=admin).status_code == 404
    assert c.get("/api/v1/console/models/bad%20name", headers=admin).status_code == 400


def test_usage_per_day_and_per_key_admin_sees_all_others_their_own(console: tuple[TestClient, Keys]) -> None:
    c, keys = console
    for key in (keys.reader, keys.reader, keys.infer_only):
        assert c.post("/v2/models/iris/infer", json=ROW, headers=keys.auth(key)).status_code == 200
    everyone = c.get("/api/v1/console/usage?days=7", headers=keys.auth(keys.admin)).json()
    assert everyone["scope"] == "all"
    assert len(everyone["days"]) == 7 and everyone["days"][-1]["day"] == datetime.now(UTC).date().isoformat()
    assert everyone["days"][-1]["requests"] == 3 and everyone["days"][0]["requests"] == 0
    assert sorted(k["requests"] for k in everyone["per_key"]) == [1, 2]
    assert everyone["per_model"][0]["model"] == "iris" and everyone["per_model"][0]["rows"] == 3
    own = c.get("/api/v1/console/usage?days=1", headers=keys.auth(keys.infer_only)).json()
    assert own["scope"] == "own" and own["days"][0]["requests"] == 1
    assert [k["requests"] for k in own["per_key"]] == [1]
    bad = c.get("/api/v1/console/usage?days=0", headers=keys.auth(keys.admin))
    assert bad.status_code == 400 and "error" in bad.json()


def test_live_metrics_turn_counters_into_rates_and_latency_quantiles(
    console: tuple[TestClient, Keys], monkeypatch: pytest.MonkeyPatch
) -> None:
    c, keys = console
    reader = keys.auth(keys.reader)
    now = [1000.0]
    monkeypatch.setattr("modelhost.console.live._now", lambda: now[0])
    first = c.get("/api/v1/console/metrics", headers=reader).json()
    assert first["points"] == []
    for _ in range(4):
        assert c.post("/v2/models/iris/infer", json=ROW, headers=reader).status_code == 200
    now[0] += 2.0
    series = c.get("/api/v1/console/metrics?model=iris", headers=reader).json()
    (point,) = series["points"]
    assert series["models"] == ["iris"]
    assert point["rps"] == pytest.approx(2.0)  # 4 requests in 2 s
    assert point["errors_per_s"] == 0
    assert 0 < point["p50_ms"] <= point["p99_ms"] < 60_000
    assert series["totals"]["requests"] == 4
    assert c.get("/api/v1/console/metrics", headers=keys.auth(keys.infer_only)).status_code == 403


def test_drift_is_readable_with_models_read(console: tuple[TestClient, Keys]) -> None:
    c, keys = console
    r = c.get("/api/v1/console/drift/iris@production", headers=keys.auth(keys.reader))
    assert r.status_code == 200
    assert r.json()["model"] == "iris" and r.json()["version"] == 1


def test_static_files_have_a_strict_csp_and_cache_headers(console: tuple[TestClient, Keys]) -> None:
    c, _ = console
    assert c.get("/console", follow_redirects=False).headers["location"] == "/console/"
    page = c.get("/console/")
    assert page.status_code == 200 and '<script type="module" src="app.js">' in page.text
    assert page.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "default-src 'none'" in CSP and "http" not in CSP
    assert page.headers["cache-control"] == "no-cache" and page.headers["x-content-type-options"] == "nosniff"
    again = c.get("/console/", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    module = c.get("/console/app.js")
    assert module.headers["content-type"].startswith("text/javascript")
    vendor = c.get("/console/vendor/uplot-1.6.32/uPlot.iife.min.js")
    assert vendor.status_code == 200 and "immutable" in vendor.headers["cache-control"]
    for bad in ("/console/../config.py", "/console/%2e%2e/routes.py", "/console/.hidden", "/console/nope.js"):
        r = c.get(bad)
        assert r.status_code == 404, bad


def test_no_file_fetches_anything_from_outside_or_writes_markup() -> None:
    checked = 0
    for path in STATIC.rglob("*"):
        if path.suffix in (".js", ".html", ".css") and "vendor" not in path.parts:
            text = path.read_text()
            assert "http://" not in text and "https://" not in text, path
            assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write", text), (
                path
            )
            checked += 1
    assert checked >= 10


def test_console_can_be_disabled(settings: Settings, iris_registry: Registry) -> None:
    with TestClient(
        create_app(settings.model_copy(update={"console_enabled": False}), registry=iris_registry)
    ) as c:
        r = c.get("/console/")
        assert r.status_code == 404 and "MODELHOST_CONSOLE_ENABLED" in r.json()["error"]


def test_every_static_file_ships_as_package_data() -> None:
    import fnmatch
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["modelhost"]
    package = STATIC.parent.parent
    files = [p.relative_to(package).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    missing = [f for f in files if not any(fnmatch.fnmatchcase(f, pat) for pat in patterns)]
    assert len(files) >= 15 and not missing, missing
