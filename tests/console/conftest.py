"""Browser fixtures: the real ``modelhost serve`` (iris registered over the admin API) and headless
Chromium driven by Playwright. Chromium is Debian's (``make test`` installs it); Playwright's own
browser download is not used. Without a launchable Chromium the browser tests are skipped."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Error, sync_playwright

from tests.e2e.conftest import Server, run_server

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]


def chromium_path() -> str | None:
    """MODELHOST_TEST_CHROMIUM, else chromium / chromium-browser on PATH."""
    return (
        os.environ.get("MODELHOST_TEST_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
        or None
    )


# Module scope, not session: while sync_playwright() is open, its event loop counts as running in
# this thread, so any later test calling asyncio.run() would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set MODELHOST_TEST_CHROMIUM)")
    with sync_playwright() as p:
        try:
            chromium = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        except Error as exc:
            pytest.skip(f"Chromium at {path} does not start: {str(exc).splitlines()[0]}")
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def console_server(
    tmp_path_factory: pytest.TempPathFactory, iris_skops: Path, browser: Any
) -> Iterator[Server]:
    """``modelhost serve`` with keys required; iris v1 (production, protected) and v2 (staging)."""
    home = tmp_path_factory.mktemp("console-home")
    # the access log on, so the test that looks for the key in the server's log has requests to look at
    with run_server(home, command="serve", MODELHOST_AUTH="keys", MODELHOST_ACCESS_LOG="true") as server:
        admin = {"Authorization": f"Bearer {server.admin_key}"}
        with httpx.Client(base_url=server.url, headers=admin, timeout=30) as c:
            for metrics in ('{"accuracy": 0.97}', '{"accuracy": 0.98}'):
                with open(iris_skops, "rb") as f:
                    r = c.post("/api/v1/models/iris/versions", files={"file": ("iris.skops", f)},
                               data={"metrics": metrics})  # fmt: skip
                assert r.status_code == 201, r.text
            assert c.put(
                "/api/v1/models/iris/aliases/production", json={"version": 1, "protect": True}
            ).is_success
            assert c.put("/api/v1/models/iris/aliases/staging", json={"version": 2}).is_success
        yield server
