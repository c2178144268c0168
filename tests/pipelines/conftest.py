"""Tiny pipeline specs (few trials, few epochs) shared by pipeline, optimize and explain tests."""

from __future__ import annotations

from typing import Any

import pytest


def spec_dict(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "t",
        "data": {"source": "sklearn:iris"},
        "candidates": [
            {"type": "logistic_regression", "search": {"C": {"low": 0.1, "high": 10, "log": True}}}
        ],
        "cv": {"folds": 3},
        "search": {"trials": 3},
        "register": {"name": "iris-t"},
    }
    base.update(over)
    return base


TORCH_MLP = {"type": "mlp", "params": {"hidden": [16], "lr": 0.02, "epochs": 15, "patience": 5}}


@pytest.fixture
def tiny_spec() -> dict[str, Any]:
    return spec_dict()
