"""A small renderer for the subset of Go templates the Helm chart uses, so tests can render and parse the
chart where the ``helm`` binary is not installed (``helm template`` is run too when it is).

Supported: ``{{ .Values.a.b }}``, ``{{ .Release.Name }}``, ``if``/``else``/``end`` (with ``not``),
``range $k, $v := ...`` over maps, pipelines with ``quote``, ``toYaml`` and ``nindent N``, and the
``{{-``/``-}}`` whitespace trimming. Anything else raises, so the chart cannot drift past what is tested.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

_ACTION = re.compile(r"{{(-?)\s*(.*?)\s*(-?)}}", re.S)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(text):
        chunk = text[pos : m.start()]
        if m.group(1):
            chunk = chunk.rstrip()
        out.append(("text", chunk))
        out.append(("action", m.group(2)))
        pos = m.end()
        if m.group(3):
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip())
    out.append(("text", text[pos:]))
    return out


def _parse(tokens: list[tuple[str, str]], i: int = 0) -> tuple[list[Any], int, str | None]:
    """Nodes until an ``else``/``end`` (returned as the stop word) or the end of input."""
    nodes: list[Any] = []
    while i < len(tokens):
        kind, value = tokens[i]
        i += 1
        if kind == "text":
            nodes.append(("text", value))
        elif value in ("end", "else"):
            return nodes, i, value
        elif value.startswith("if "):
            body, i, stop = _parse(tokens, i)
            other: list[Any] = []
            if stop == "else":
                other, i, stop = _parse(tokens, i)
            if stop != "end":
                raise ValueError(f"unclosed {value!r}")
            nodes.append(("if", value[3:], body, other))
        elif value.startswith("range "):
            m = re.fullmatch(r"range \$(\w+), \$(\w+) := (.+)", value)
            if not m:
                raise ValueError(f"unsupported range: {value!r}")
            body, i, stop = _parse(tokens, i)
            if stop != "end":
                raise ValueError(f"unclosed {value!r}")
            nodes.append(("range", m.groups(), body))
        else:
            nodes.append(("expr", value))
    return nodes, i, None


def _value(term: str, scope: dict[str, Any]) -> Any:
    if term.startswith('"'):
        return json.loads(term)
    if term.isdigit():
        return int(term)
    if term.startswith("$"):
        return scope[term[1:]]
    if not term.startswith("."):
        raise ValueError(f"unsupported term {term!r}")
    value: Any = scope["."]
    for part in term[1:].split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _pipeline(expr: str, scope: dict[str, Any]) -> Any:
    stages = [s.strip() for s in expr.split("|")]
    words = stages[0].split()
    if words[0] == "not":
        value: Any = not _truthy(_value(words[1], scope))
    elif words[0] == "toYaml":
        value = yaml.safe_dump(_value(words[1], scope), default_flow_style=False).rstrip("\n")
    elif len(words) == 1:
        value = _value(words[0], scope)
    else:
        raise ValueError(f"unsupported function in {expr!r}")
    for stage in stages[1:]:
        name, *args = stage.split()
        if name == "quote":
            value = json.dumps("" if value is None else str(value))
        elif name == "nindent":
            pad = " " * int(args[0])
            value = "\n" + "\n".join(pad + line for line in str(value).splitlines())
        else:
            raise ValueError(f"unsupported function {name!r}")
    return value


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, "") and value != {} and value != []


def _render(nodes: list[Any], scope: dict[str, Any]) -> str:
    out: list[str] = []
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "expr":
            value = _pipeline(node[1], scope)
            out.append("" if value is None else str(value).lower() if isinstance(value, bool) else str(value))
        elif node[0] == "if":
            out.append(_render(node[2] if _truthy(_pipeline(node[1], scope)) else node[3], scope))
        elif node[0] == "range":
            (key, val, source) = node[1]
            for k, v in sorted((_pipeline(source, scope) or {}).items()):
                out.append(_render(node[2], {**scope, key: k, val: v}))
    return "".join(out)


def render(template: str, values: dict[str, Any], release: str = "test") -> str:
    """Render one chart template with ``values`` (already merged) for a release named ``release``."""
    nodes, _, stop = _parse(_tokens(template))
    if stop is not None:
        raise ValueError(f"unexpected {stop!r}")
    return _render(nodes, {".": {"Values": values, "Release": {"Name": release}}})
