from __future__ import annotations

import pytest

from modelhost.errors import InvalidInput
from modelhost.pipelines.spec import load_spec, parse_gate, parse_spec
from tests.pipelines.conftest import spec_dict


def test_typo_is_named() -> None:
    with pytest.raises(InvalidInput, match=r"cv\.fold: unknown field"):
        parse_spec(spec_dict(cv={"fold": 3}))


def test_missing_and_bad_fields_are_named() -> None:
    raw = spec_dict(test_size=2)
    del raw["candidates"]
    with pytest.raises(InvalidInput) as info:
        parse_spec(raw)
    assert "candidates" in info.value.message and "test_size" in info.value.message


def test_range_needs_bounds() -> None:
    raw = spec_dict(candidates=[{"type": "svc", "search": {"C": {"low": 1}}}])
    with pytest.raises(InvalidInput, match=r"candidates.0.search.C"):
        parse_spec(raw)


def test_yaml_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        load_spec(bad)
    with pytest.raises(InvalidInput, match="does not exist"):
        load_spec(tmp_path / "none.yaml")


def test_examples_are_valid() -> None:
    from modelhost.cli.ml import EXAMPLES

    specs = sorted(EXAMPLES.glob("*.yaml"))
    assert len(specs) >= 5
    for path in specs:
        assert load_spec(path).registration.name


@pytest.mark.parametrize(
    ("when", "parsed"),
    [
        ("roc_auc > production + 0.01", ("roc_auc", ">", "production", 0.01)),
        ("r2 >= staging - 0.5", ("r2", ">=", "staging", -0.5)),
        ("accuracy > production's + 0.01", ("accuracy", ">", "production", 0.01)),
        ("accuracy >= 0.9", ("accuracy", ">=", None, 0.9)),
    ],
)
def test_gate_parsing(when: str, parsed: tuple) -> None:  # type: ignore[type-arg]
    assert parse_gate(when) == parsed


def test_bad_gate() -> None:
    with pytest.raises(InvalidInput, match="promote_if"):
        parse_gate("accuracy is great")
