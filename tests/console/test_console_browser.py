"""The web console in real headless Chromium against the real server: log in, promote and roll back
an alias, try a model, create and revoke a key, watch usage move; a read-only key sees but cannot act.

With MODELHOST_CONSOLE_SCREENSHOTS=<dir> the tests also save the screenshots docs/console.md shows.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e
ROW = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [6.3, 3.3, 6.0, 2.5]}]}
KEY_RE = re.compile(r"mh_live_[0-9a-f]{12}_[A-Za-z0-9_-]+")


@pytest.fixture
def page(browser: Any, console_server: Server) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=console_server.url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    # failed requests the test provoked on purpose (401, 403) log as console errors; scripts must not throw
    assert not [e for e in errors if "Failed to load resource" not in e], errors


def shot(page: Any, name: str) -> None:
    target = os.environ.get("MODELHOST_CONSOLE_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"console-{name}.png"))


def login(page: Any, key: str, then: str = "#/models") -> None:
    page.goto("/console/")
    page.get_by_test_id("login-key").fill(key)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("whoami").wait_for()
    page.goto(f"/console/{then}")


def api(server: Server, key: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key or server.admin_key}"}, timeout=30
    )


def test_login_keeps_the_key_out_of_urls_and_logs(page: Any, console_server: Server) -> None:
    page.goto("/console/")
    page.get_by_test_id("login-key").fill("mh_live_000000000000_not-a-real-key-at-all")
    page.get_by_test_id("login-submit").click()
    expect(page.locator(".toast.error")).to_contain_text(re.compile("key", re.IGNORECASE))
    assert page.get_by_test_id("whoami").count() == 0 and page.evaluate("sessionStorage.length") == 0
    login(page, console_server.admin_key)
    assert "admin" in page.get_by_test_id("whoami").inner_text()
    page.get_by_test_id("model-iris").wait_for()
    shot(page, "models")
    assert console_server.admin_key not in page.url
    page.reload()  # the key survives a reload of the tab (sessionStorage)...
    page.get_by_test_id("model-iris").wait_for()
    page.get_by_test_id("logout").click()  # ...and is gone after signing out
    page.get_by_test_id("login-key").wait_for()
    assert page.evaluate("sessionStorage.length") == 0
    # the server printed the first admin key once at start-up; no request put it in the log again
    log = (console_server.home / "server.log").read_text()
    assert log.count(console_server.admin_key) == 1
    assert "/api/v1/console/session" in log  # the access log did record the requests


def test_promote_a_protected_alias_with_confirmation_then_roll_back(
    page: Any, console_server: Server
) -> None:
    login(page, console_server.admin_key, "#/models/iris")
    page.get_by_test_id("version-1").click()  # expand v1's details (signature, lineage, sha256)
    assert "upload:iris.skops" in page.get_by_test_id("version-1").inner_text()
    shot(page, "model")
    page.get_by_test_id("promote-version-production").select_option("2")
    page.get_by_test_id("promote-production").click()
    ok = page.get_by_test_id("confirm-ok")
    assert ok.is_disabled()  # protected: the alias name must be typed first
    page.get_by_test_id("confirm-input").fill("production")
    ok.click()
    page.get_by_test_id("alias-version-production").filter(has_text="v2").wait_for()
    with api(console_server) as c:
        assert c.get("/api/v1/models/iris/aliases").json()[0]["version"] in (1, 2)
        aliases = {a["alias"]: a["version"] for a in c.get("/api/v1/models/iris/aliases").json()}
        assert aliases["production"] == 2
    page.get_by_test_id("rollback-production").click()
    page.get_by_test_id("confirm-input").fill("production")
    page.get_by_test_id("confirm-ok").click()
    page.get_by_test_id("alias-version-production").filter(has_text="v1").wait_for()
    with api(console_server) as c:
        aliases = {a["alias"]: a["version"] for a in c.get("/api/v1/models/iris/aliases").json()}
        assert aliases["production"] == 1
        actions = [e["action"] for e in c.get("/api/v1/audit?target=model:iris").json()]
        assert len(actions) >= 2


def test_try_a_tabular_model_shows_its_prediction(page: Any, console_server: Server) -> None:
    login(page, console_server.admin_key, "#/try/iris")
    for i, value in enumerate(ROW["inputs"][0]["data"]):
        page.get_by_test_id(f"field-input-{i}").fill(str(value))
    page.get_by_test_id("try-submit").click()
    prediction = page.get_by_test_id("prediction")
    prediction.wait_for()
    shot(page, "try")
    with api(console_server) as c:
        expected = c.post("/v2/models/iris/infer", json=ROW).json()["outputs"][0]["data"]
    assert f"{expected}".replace(" ", "") in prediction.inner_text().replace(" ", "")


def test_create_a_key_shown_once_then_revoke_it(page: Any, console_server: Server) -> None:
    login(page, console_server.admin_key, "#/keys")
    page.get_by_test_id("key-name").fill("console-test")
    page.get_by_test_id("key-create").click()
    secret = page.get_by_test_id("new-key-secret").inner_text()
    assert KEY_RE.fullmatch(secret)
    key_id = secret.split("_")[2]
    with api(console_server, secret) as c:
        assert c.post("/v2/models/iris/infer", json=ROW).status_code == 200
    page.reload()
    page.get_by_test_id(f"revoke-{key_id}").wait_for()
    assert secret not in page.content()  # shown once: never again
    shot(page, "keys")
    page.get_by_test_id(f"revoke-{key_id}").click()
    page.get_by_test_id("confirm-ok").click()
    page.get_by_test_id("keys-table").get_by_text("revoked").first.wait_for()
    with api(console_server, secret) as c:
        r = c.post("/v2/models/iris/infer", json=ROW)
        assert r.status_code == 401 and "revoked" in r.text.lower()


def test_usage_moves_after_requests(page: Any, console_server: Server) -> None:
    login(page, console_server.admin_key, "#/usage")
    total = page.get_by_test_id("usage-total")
    before = int(total.inner_text().split()[0])
    with api(console_server) as c:
        for _ in range(3):
            assert c.post("/v2/models/iris/infer", json=ROW).status_code == 200
    page.get_by_test_id("usage-refresh").click()
    # (wait_for_function evaluates a string: the console's CSP forbids that, as it should)
    expect(total).to_have_text(re.compile(rf"^{before + 3} requests"))
    assert "iris" in page.get_by_test_id("usage-per-model").inner_text()
    shot(page, "usage")
    page.goto("/console/#/metrics")
    expect(page.get_by_test_id("metrics-totals")).to_contain_text("requests")
    with api(console_server) as c:
        for _ in range(5):
            c.post("/v2/models/iris/infer", json=ROW)
    expect(page.get_by_test_id("metrics-totals")).to_have_attribute(
        "data-points", re.compile(r"^([2-9]|\d{2,})$"), timeout=8000
    )
    if os.environ.get("MODELHOST_CONSOLE_SCREENSHOTS"):  # a chart worth showing: 12 s of varying traffic
        with api(console_server) as c:
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline:
                c.post("/v2/models/iris/infer", json=ROW)
                time.sleep(0.05 + 0.1 * (int(time.monotonic()) % 3))
        page.wait_for_timeout(2500)
    shot(page, "metrics")


def test_read_only_key_sees_but_cannot_act(page: Any, console_server: Server) -> None:
    with api(console_server) as c:
        reader = c.post("/api/v1/keys", json={"name": "viewer", "scopes": ["models:read"]}).json()["key"]
    login(page, reader, "#/models/iris")
    assert "read-only" in page.get_by_test_id("whoami").inner_text()
    page.get_by_test_id("alias-production").wait_for()
    assert page.get_by_test_id("promote-production").count() == 0
    assert page.get_by_test_id("rollback-production").count() == 0
    assert page.get_by_test_id("register-form").count() == 0
    page.goto("/console/#/deployments")
    page.get_by_test_id("deployment-iris").wait_for()
    assert page.get_by_test_id("max_batch_size").is_disabled()
    page.goto("/console/#/keys")
    page.get_by_text("needs an admin key").wait_for()


def test_deployment_settings_and_canary_slider(page: Any, console_server: Server) -> None:
    login(page, console_server.admin_key, "#/deployments")
    card = page.get_by_test_id("deployment-iris")
    card.get_by_test_id("max_batch_size").fill("8")
    card.get_by_role("button", name="Save").click()
    expect(page.locator(".toast").last).to_contain_text("deployment updated")
    page.get_by_test_id("canary-version-iris-staging").select_option("1")
    page.get_by_test_id("canary-percent-iris-staging").fill("25")
    page.get_by_test_id("canary-apply-iris-staging").click()
    expect(page.locator(".toast").last).to_contain_text("25% to v1")
    with api(console_server) as c:
        deployment = c.get("/api/v1/models/iris/deployment").json()
        assert deployment["max_batch_size"] == 8
        assert deployment["canaries"] == {"staging": {"version": 1, "percent": 25.0}}
    page.get_by_test_id("deployment-iris").get_by_role("button", name="Clear").click()
    expect(page.locator(".toast").last).to_contain_text("canary cleared")
    with api(console_server) as c:
        assert c.get("/api/v1/models/iris/deployment").json()["canaries"] == {}
