"""PyTorch trainer: an MLP trained with Adam and early stopping, saved as safetensors + arch spec.

Standardisation is learned from the training rows and folded into the first linear layer after
training, so the saved network takes raw features and needs no separate preprocessing artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelhost.errors import InvalidInput
from modelhost.runtimes import torch_arch
from modelhost.runtimes.torch import head_outputs

DEFAULTS: dict[str, Any] = {
    "hidden": [64],
    "lr": 1e-2,
    "epochs": 100,
    "batch_size": 64,
    "patience": 10,
    "weight_decay": 0.0,
    "dropout": 0.0,
    "activation": "relu",
    "output": None,  # softmax/sigmoid for classification (sigmoid only for two classes), linear for regression
    "validation_fraction": 0.15,
}


def _check_params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise InvalidInput(
            f"candidates: unknown torch/keras parameter(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}"
        )
    p = {**DEFAULTS, **params}
    if isinstance(p["hidden"], int):
        p["hidden"] = [p["hidden"]]
    return p


def make_spec(task: str, p: dict[str, Any], n_in: int, classes: list[Any]) -> torch_arch.ArchSpec:
    if task == "classification":
        output = p["output"] or "softmax"
        if output == "sigmoid" and len(classes) != 2:
            raise InvalidInput("candidates: output 'sigmoid' needs exactly two classes")
        if output not in ("softmax", "sigmoid"):
            raise InvalidInput(f"candidates: output '{output}' does not fit a classification task")
        n_out = 1 if output == "sigmoid" else len(classes)
    else:
        output, n_out = "linear", 1
    return torch_arch.ArchSpec(
        name="mlp",
        in_features=n_in,
        out_features=n_out,
        hidden=tuple(int(h) for h in p["hidden"]),
        activation=str(p["activation"]),
        output=output,
        dropout=float(p["dropout"]),
        classes=tuple(classes),
    )


def loss_fn(spec: torch_arch.ArchSpec) -> Any:
    from torch import nn

    if spec.output == "softmax":
        return nn.CrossEntropyLoss()
    if spec.output == "sigmoid":
        return nn.BCEWithLogitsLoss()
    return nn.MSELoss()


def targets(spec: torch_arch.ArchSpec, y: np.ndarray) -> Any:
    """Training targets as tensors: class indices, 0/1 floats, or the (scaled) value."""
    import torch

    if spec.output == "softmax":
        index = {c: i for i, c in enumerate(spec.classes)}
        return torch.tensor([index[v] for v in y.tolist()], dtype=torch.long)
    if spec.output == "sigmoid":
        return torch.tensor([float(v == spec.classes[1]) for v in y.tolist()], dtype=torch.float32).unsqueeze(
            1
        )
    return torch.tensor(np.asarray(y, dtype=np.float32)).unsqueeze(1)


def fold_affine(
    module: Any, mean: np.ndarray, std: np.ndarray, y_mean: float = 0.0, y_std: float = 1.0
) -> None:
    """Fold input standardisation into the first Linear layer and target scaling into the last:
    W(x-μ)/σ + b = (W/σ)x + (b - W μ/σ)."""
    import torch

    with torch.no_grad():
        first, last = module[0], module[-1]
        w = first.weight / torch.from_numpy(std.astype(np.float32))
        first.bias -= w @ torch.from_numpy(mean.astype(np.float32))
        first.weight.copy_(w)
        if y_std != 1.0 or y_mean != 0.0:
            last.weight *= y_std
            last.bias.mul_(y_std).add_(y_mean)


def train_loop(module: Any, spec: torch_arch.ArchSpec, p: dict[str, Any], x: Any, t: Any, seed: int) -> int:
    """Adam with early stopping on a validation slice; restores the best weights. Returns epochs run."""
    import torch

    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    perm = torch.randperm(n, generator=g)
    n_val = max(1, int(n * float(p["validation_fraction"]))) if n >= 20 else 0
    val, tr = perm[:n_val], perm[n_val:]
    opt = torch.optim.Adam(module.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
    criterion = loss_fn(spec)
    best, best_state, bad, epoch = float("inf"), None, 0, 0
    for epoch in range(1, int(p["epochs"]) + 1):  # noqa: B007 - the last epoch is returned
        module.train()
        order = tr[torch.randperm(tr.numel(), generator=g)]
        for start in range(0, order.numel(), int(p["batch_size"])):
            idx = order[start : start + int(p["batch_size"])]
            opt.zero_grad()
            criterion(module(x[idx]), t[idx]).backward()
            opt.step()
        if n_val == 0:
            continue
        module.eval()
        with torch.no_grad():
            val_loss = float(criterion(module(x[val]), t[val]))
        if val_loss < best - 1e-6:
            best, bad = val_loss, 0
            best_state = {k: v.clone() for k, v in module.state_dict().items()}
        else:
            bad += 1
            if bad >= int(p["patience"]):
                break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return epoch


class TorchFitted:
    def __init__(self, module: Any, spec: torch_arch.ArchSpec, epochs: int = 0) -> None:
        self.module, self.spec, self.epochs = module, spec, epochs

    def _raw(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        return head_outputs(self._raw(x), self.spec.output, self.spec.classes, ["predict"])["predict"]

    def predict_proba(self, x: np.ndarray) -> np.ndarray | None:
        if not self.spec.is_classifier:
            return None
        return head_outputs(self._raw(x), self.spec.output, self.spec.classes, ["predict_proba"])[
            "predict_proba"
        ]

    def save(self, directory: Path) -> Path:
        return torch_arch.save(self.module, self.spec, directory / "model.safetensors")


def standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 1e-8] = 1.0  # constant columns (digits' blank pixels) stay unscaled
    return mean, std


class TorchTrainer:
    def __init__(self, task: str, seed: int) -> None:
        self.task, self.seed = task, seed

    def kinds(self) -> tuple[str, ...]:
        return ("mlp",)

    def fit(self, kind: str, params: dict[str, Any], x: np.ndarray, y: np.ndarray) -> TorchFitted:
        import torch

        p = _check_params(params)
        classes = sorted(np.unique(y).tolist()) if self.task == "classification" else []
        spec = make_spec(self.task, p, x.shape[1], classes)
        torch.manual_seed(self.seed)
        module = torch_arch.build(spec)
        mean, std = standardise(x)
        xs = torch.from_numpy(((x - mean) / std).astype(np.float32))
        y_mean, y_std = (
            (float(np.mean(y)), float(np.std(y)) or 1.0) if self.task == "regression" else (0.0, 1.0)
        )
        yt = (y - y_mean) / y_std if self.task == "regression" else y
        epochs = train_loop(module, spec, p, xs, targets(spec, np.asarray(yt)), self.seed)
        fold_affine(module, mean, std, y_mean, y_std)
        return TorchFitted(module, spec, epochs)
