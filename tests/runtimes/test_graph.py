"""Graph files are checked at registration: pinned versions, sources defined before use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelhost.errors import UnsupportedFormat
from modelhost.registry.formats import GRAPH, detect_format
from modelhost.runtimes.graph import parse_graph

GOOD: dict[str, Any] = {
    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
    "steps": [
        {"name": "embed", "model": "minilm", "version": 1, "inputs": {"text": "$text"}},
        {"name": "head", "model": "head", "version": 3, "inputs": {"input": "embed.embedding"}},
    ],
    "outputs": {"label": "head.label"},
}


def _write(tmp_path: Path, graph: Any) -> Path:
    path = tmp_path / "g.json"
    path.write_text(json.dumps(graph))
    return path


def test_good_graph_parses(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    assert detect_format(path) == GRAPH
    spec = parse_graph(path)
    assert [(s.name, s.model, s.version) for s in spec.steps] == [("embed", "minilm", 1), ("head", "head", 3)]
    assert spec.outputs == {"label": "head.label"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda g: g["steps"][0].pop("version"), "pin an integer 'version'"),
        (lambda g: g["steps"][0].update(model="minilm@production"), "no alias"),
        (lambda g: g["steps"][1]["inputs"].update(input="later.x"), "not defined before it"),
        (lambda g: g["steps"][0]["inputs"].update(text="$missing"), "not defined before it"),
        (lambda g: g["steps"][1].update(name="embed"), "unique 'name'"),
        (lambda g: g.update(outputs={"label": "nowhere.label"}), "expected '<step>.<output>'"),
        (lambda g: g.update(steps=[]), "non-empty 'steps'"),
    ],
)
def test_bad_graphs_are_refused_with_the_reason(tmp_path: Path, change: Any, message: str) -> None:
    graph = json.loads(json.dumps(GOOD))
    change(graph)
    with pytest.raises(UnsupportedFormat, match=message):
        parse_graph(_write(tmp_path, graph))
