"""Tiny random-weight transformers directories (built once per run) and an app serving them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modelhost.config import Settings
from modelhost.registry import Registry
from modelhost.serving.app import create_app
from tests.runtimes import hf_tiny


@pytest.fixture(scope="session")
def hf_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf-models")
    return {
        "sentiment": hf_tiny.sequence_classifier(root / "sentiment"),
        "ner": hf_tiny.token_classifier(root / "ner"),
        "encoder": hf_tiny.bare_encoder(root / "encoder"),
        "summarizer": hf_tiny.seq2seq(root / "summarizer", {"summarization": {"prefix": "summarize: "}}),
        "translator": hf_tiny.seq2seq(
            root / "translator",
            {
                "translation_en_to_de": {"prefix": "translate English to German: "},
                "translation_en_to_fr": {"prefix": "translate English to French: "},
            },
        ),
        "vit": hf_tiny.image_classifier(root / "vit"),
        "ctc": hf_tiny.ctc_speech(root / "ctc"),
        "sounds": hf_tiny.audio_classifier(root / "sounds"),
    }


@pytest.fixture(scope="session")
def hf_registry(tmp_path_factory: pytest.TempPathFactory, hf_dirs: dict[str, Path]) -> Iterator[Registry]:
    """Every tiny model registered (task inferred) under its fixture name; batches wait 20 ms."""
    settings = Settings(home=tmp_path_factory.mktemp("hf-home"), grpc_port=0, max_wait_ms=20.0)
    registry = Registry(settings)
    for name, path in hf_dirs.items():
        registry.register_version(name, path, actor="test")
    yield registry
    registry.close()


@pytest.fixture(scope="session")
def hf_client(hf_registry: Registry) -> Iterator[TestClient]:
    with TestClient(create_app(hf_registry.settings, registry=hf_registry)) as client:
        yield client
