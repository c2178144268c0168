"""``modelhost serve`` freezes what its start-up loaded (``ModelhostApp.freeze_after_start``): the
models and their libraries stay out of every later full collection. Apps built for tests or
embedders leave the collector alone."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient

from modelhost.registry import Registry
from modelhost.serving.app import create_app


def test_start_up_loads_are_frozen_only_when_asked(iris_registry: Registry) -> None:
    gc.unfreeze()
    try:
        with TestClient(create_app(iris_registry.settings, registry=iris_registry)) as c:
            assert c.get("/v2/models/iris/ready").status_code == 200
            assert gc.get_freeze_count() == 0
        app = create_app(iris_registry.settings, registry=iris_registry)
        app.freeze_after_start = True
        with TestClient(app) as c:
            assert c.get("/v2/models/iris/ready").status_code == 200  # loaded at start-up, then frozen
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
