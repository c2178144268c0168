"""Federated averaging (FedAvg, McMahan et al. 2017) simulated in one process for a PyTorch MLP.

K clients hold disjoint, stratified shards of the training rows. Each round every client starts
from the global weights, trains ``local_epochs`` on its shard, and sends back its weights; the
server averages them weighted by shard size. With ``dp_noise`` > 0 each client's update (its
weights minus the global ones) is clipped to L2 norm ``clip`` and Gaussian noise of that std × clip
is added before averaging (the Gaussian mechanism of DP-FedAvg; no privacy accounting is done).
The same network trained centrally on all rows is reported alongside for comparison.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelhost.errors import InvalidInput
from modelhost.pipelines.data import load_dataset
from modelhost.pipelines.evaluate import score
from modelhost.pipelines.spec import PipelineSpec
from modelhost.pipelines.torch import (
    TorchFitted,
    TorchTrainer,
    _check_params,
    fold_affine,
    make_spec,
    standardise,
    targets,
    train_loop,
)
from modelhost.runtimes import torch_arch


def _shards(y: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    from sklearn.model_selection import StratifiedKFold

    try:
        return [
            va
            for _, va in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(
                np.zeros(len(y)), y
            )
        ]
    except ValueError as exc:
        raise InvalidInput(
            f"federated.clients: cannot give {k} clients a shard of every class: {exc}"
        ) from None


def fedavg(spec: PipelineSpec, x: np.ndarray, y: np.ndarray, on_round: Any = None) -> TorchFitted:
    """Train with FedAvg; ``on_round(round, global_fitted)`` is called after each round."""
    import torch

    assert spec.federated is not None
    fed = spec.federated
    cand = spec.candidates[0]
    p = _check_params(cand.params)
    p.update(epochs=fed.local_epochs, patience=fed.local_epochs + 1, validation_fraction=0.0)
    classes = sorted(np.unique(y).tolist())
    arch = make_spec(spec.task, p, x.shape[1], classes)
    # Clients share the scaling statistics, as a federated deployment would agree on them up front.
    mean, std = standardise(x)
    xs = torch.from_numpy(((x - mean) / std).astype(np.float32))
    torch.manual_seed(spec.seed)
    global_model = torch_arch.build(arch)
    rng = np.random.default_rng(spec.seed)
    shards = _shards(y, fed.clients, spec.seed)
    sizes = np.array([len(s) for s in shards], dtype=float)
    for rnd in range(1, fed.rounds + 1):
        start = {k: v.clone() for k, v in global_model.state_dict().items()}
        updates: list[dict[str, Any]] = []
        for c, shard in enumerate(shards):
            local = torch_arch.build(arch)
            local.load_state_dict(start)
            idx = torch.from_numpy(shard)
            train_loop(local, arch, p, xs[idx], targets(arch, y[shard]), seed=spec.seed * 1000 + rnd * 31 + c)
            delta = {k: local.state_dict()[k] - start[k] for k in start}
            if fed.dp_noise > 0:
                norm = float(torch.sqrt(sum((d.float() ** 2).sum() for d in delta.values())))
                scale = min(1.0, fed.clip / (norm + 1e-12))
                delta = {
                    k: d * scale
                    + torch.from_numpy(rng.normal(0, fed.dp_noise * fed.clip, d.shape).astype(np.float32))
                    for k, d in delta.items()
                }
            updates.append(delta)
        weights = sizes / sizes.sum()
        avg = {
            k: start[k] + sum(float(w) * u[k] for w, u in zip(weights, updates, strict=True)) for k in start
        }
        global_model.load_state_dict(avg)
        if on_round is not None:
            on_round(rnd, _folded(global_model, arch, mean, std))
    return _folded(global_model, arch, mean, std)


def _folded(module: Any, arch: torch_arch.ArchSpec, mean: np.ndarray, std: np.ndarray) -> TorchFitted:
    copy = torch_arch.build(arch)
    copy.load_state_dict(module.state_dict())
    fold_affine(copy, mean, std)
    copy.eval()
    return TorchFitted(copy, arch)


def run_federated(
    spec: PipelineSpec, registry: Any, *, show_progress: bool = True, actor: str = "pipeline"
) -> Any:
    """FedAvg training, then the centralised baseline, then registration of the federated model."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from modelhost.pipelines.run import register_fitted, split

    if spec.framework != "torch" or spec.task != "classification":
        raise InvalidInput("federated: FedAvg is implemented for framework: torch, task: classification")
    if spec.candidates[0].type != "mlp":
        raise InvalidInput("candidates.0.type: federated training uses the torch 'mlp' candidate")
    assert spec.federated is not None
    ds = load_dataset(spec.data, spec.task)
    if ds.x.isna().to_numpy().any():
        raise InvalidInput("data: federated training needs complete rows; the data has missing values")
    x_tr, x_te, y_tr, y_te = split(spec, ds)
    history: list[float] = []
    with Progress(
        TextColumn("[bold]FedAvg[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show_progress,
    ) as progress:
        task = progress.add_task("rounds", total=spec.federated.rounds)

        def on_round(rnd: int, fitted: TorchFitted) -> None:
            history.append(score("accuracy", y_te, fitted.predict(x_te), None))
            progress.update(task, advance=1, description=f"round {rnd} accuracy={history[-1]:.4f}")

        fitted = fedavg(spec, x_tr, y_tr, on_round)
    central = TorchTrainer(spec.task, spec.seed).fit("mlp", spec.candidates[0].params, x_tr, y_tr)
    central_acc = score("accuracy", y_te, central.predict(x_te), None)
    fed = spec.federated
    extra = {"centralized_accuracy": central_acc, "federated_rounds_accuracy": history}
    params = {"model": "mlp", **spec.candidates[0].params, "federated": fed.model_dump()}
    return register_fitted(spec, registry, ds, fitted, extra, params, x_te, y_te, None, actor)
