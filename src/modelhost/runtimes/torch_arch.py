"""Registered PyTorch architectures: a safetensors state dict is only ever loaded into one of these.

The safe route for PyTorch: weights are a safetensors file (tensors only, no code), and the network
that receives them is built from a small JSON spec stored in the file's ``__metadata__`` under
``modelhost.arch``. Loading never unpickles and never imports code named by the artifact: the spec
can only pick an architecture from ``ARCHITECTURES`` and set its numeric options.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from modelhost.errors import UnsupportedFormat

ARCH_KEY = "modelhost.arch"
ACTIVATIONS = ("relu", "tanh", "gelu")
OUTPUTS = ("softmax", "sigmoid", "linear")


@dataclass(frozen=True)
class ArchSpec:
    """What is needed to rebuild a network: an architecture name and its numeric options."""

    name: str
    in_features: int
    out_features: int
    hidden: tuple[int, ...] = ()
    activation: str = "relu"
    output: str = "linear"  # softmax: multi-class; sigmoid: binary (1 unit); linear: regression
    dropout: float = 0.0
    classes: tuple[Any, ...] = field(default=())

    def to_json(self) -> str:
        d = asdict(self)
        d["hidden"], d["classes"] = list(self.hidden), list(self.classes)
        return json.dumps(d)

    @classmethod
    def from_json(cls, raw: str) -> ArchSpec:
        try:
            d = json.loads(raw)
            spec = cls(
                name=str(d["name"]),
                in_features=int(d["in_features"]),
                out_features=int(d["out_features"]),
                hidden=tuple(int(h) for h in d.get("hidden", [])),
                activation=str(d.get("activation", "relu")),
                output=str(d.get("output", "linear")),
                dropout=float(d.get("dropout", 0.0)),
                classes=tuple(d.get("classes", [])),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise UnsupportedFormat(f"invalid '{ARCH_KEY}' architecture spec: {exc}") from exc
        spec.check()
        return spec

    def check(self) -> None:
        if self.name not in ARCHITECTURES:
            raise UnsupportedFormat(
                f"architecture '{self.name}' is not registered; known: {', '.join(sorted(ARCHITECTURES))}"
            )
        if self.activation not in ACTIVATIONS:
            raise UnsupportedFormat(f"activation '{self.activation}' is not one of {', '.join(ACTIVATIONS)}")
        if self.output not in OUTPUTS:
            raise UnsupportedFormat(f"output '{self.output}' is not one of {', '.join(OUTPUTS)}")
        if self.in_features < 1 or self.out_features < 1 or any(h < 1 for h in self.hidden):
            raise UnsupportedFormat("layer sizes in the architecture spec must be positive")

    @property
    def is_classifier(self) -> bool:
        return self.output in ("softmax", "sigmoid")


def _mlp(spec: ArchSpec) -> Any:
    from torch import nn

    act: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
    layers: list[nn.Module] = []
    width = spec.in_features
    for h in spec.hidden:
        layers += [nn.Linear(width, h), act[spec.activation]()]
        if spec.dropout > 0:
            layers.append(nn.Dropout(spec.dropout))
        width = h
    layers.append(nn.Linear(width, spec.out_features))
    # The output activation is applied by the runtime, so training can use logits-based losses.
    return nn.Sequential(*layers)


ARCHITECTURES: dict[str, Callable[[ArchSpec], Any]] = {"mlp": _mlp}


def build(spec: ArchSpec) -> Any:
    """A fresh, untrained module for ``spec``."""
    spec.check()
    return ARCHITECTURES[spec.name](spec)


def save(module: Any, spec: ArchSpec, path: Any) -> Any:
    """Write ``module``'s state dict as safetensors with ``spec`` in the metadata."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(state, str(path), metadata={ARCH_KEY: spec.to_json()})
    return path


def read_spec(path: Any) -> ArchSpec:
    """The architecture spec of a safetensors file, or UnsupportedFormat if it has none."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types on malformed headers
        raise UnsupportedFormat(f"cannot read safetensors header: {exc}") from exc
    raw = meta.get(ARCH_KEY)
    if raw is None:
        raise UnsupportedFormat(
            f"the safetensors file has no '{ARCH_KEY}' metadata naming a registered architecture; "
            "save PyTorch models with modelhost.runtimes.torch_arch.save(module, spec, path)"
        )
    return ArchSpec.from_json(raw)


def load(path: Any) -> tuple[Any, ArchSpec]:
    """Build the registered architecture and load the weights strictly (no missing or extra keys)."""
    from safetensors.torch import load_file

    spec = read_spec(path)
    module = build(spec)
    try:
        module.load_state_dict(load_file(str(path)), strict=True)
    except RuntimeError as exc:
        raise UnsupportedFormat(f"weights do not fit architecture '{spec.name}': {exc}") from exc
    module.eval()
    return module, spec
