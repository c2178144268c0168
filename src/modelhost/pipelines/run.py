"""Run a pipeline end to end: data → split → search → final fit → held-out evaluation → register →
promotion gate. Everything that can fail runs before registration, so a failed run registers nothing."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.errors import AliasNotFound, InvalidInput, ModelNotFound
from modelhost.pipelines.data import Dataset, data_hash, load_dataset, reference_profile
from modelhost.pipelines.evaluate import classification_metrics, regression_metrics, roc_png
from modelhost.pipelines.search import SearchResult, search
from modelhost.pipelines.spec import PipelineSpec, parse_gate
from modelhost.pipelines.trainer import Fitted, Trainer
from modelhost.provenance import code_version
from modelhost.registry import Registry, VersionInfo


@dataclass
class RunResult:
    version: VersionInfo
    metrics: dict[str, Any]
    search: SearchResult | None
    plots: dict[str, str] = field(default_factory=dict)
    promoted: bool | None = None
    gate: str = ""


def make_trainer(spec: PipelineSpec, ds: Dataset) -> Trainer:
    numeric = [i for i, c in enumerate(ds.x.columns) if np.issubdtype(ds.x[c].dtype, np.number)]
    categorical = [i for i in range(ds.x.shape[1]) if i not in numeric]
    if spec.framework == "sklearn":
        from modelhost.pipelines.tabular import SklearnTrainer

        return SklearnTrainer(spec.task, spec.preprocess, numeric, categorical, spec.seed)
    if categorical:
        names = ", ".join(ds.feature_names[i] for i in categorical)
        raise InvalidInput(
            f"data.features: {spec.framework} pipelines take numeric features only; not numeric: {names}"
        )
    if ds.x.isna().to_numpy().any():
        raise InvalidInput(
            f"data: {spec.framework} pipelines need complete rows; the data has missing values"
        )
    if spec.framework == "torch":
        from modelhost.pipelines.torch import TorchTrainer

        return TorchTrainer(spec.task, spec.seed)
    from modelhost.pipelines.keras import KerasTrainer

    return KerasTrainer(spec.task, spec.seed)


def split(spec: PipelineSpec, ds: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The train/held-out split; optimize/explain/fairness rebuild it from the version's lineage."""
    from sklearn.model_selection import train_test_split

    x = (
        ds.x.to_numpy(dtype=float)
        if all(np.issubdtype(t, np.number) for t in ds.x.dtypes)
        else ds.x.to_numpy()
    )
    y = ds.y.to_numpy()
    stratify = y if spec.task == "classification" else None
    try:
        x_tr, x_te, y_tr, y_te = train_test_split(
            x, y, test_size=spec.test_size, random_state=spec.seed, stratify=stratify
        )
    except ValueError as exc:
        raise InvalidInput(f"test_size: cannot split the data: {exc}") from None
    return x_tr, x_te, y_tr, y_te


def evaluate(
    spec: PipelineSpec, fitted: Fitted, x: np.ndarray, y: np.ndarray, out_dir: Path | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Held-out metrics; for classifiers also the ROC curve PNG (when ``out_dir`` is given)."""
    pred = fitted.predict(x)
    if spec.task == "regression":
        return regression_metrics(y, pred), {}
    proba = fitted.predict_proba(x)
    metrics = classification_metrics(y, pred, proba)
    plots: dict[str, str] = {}
    if proba is not None and out_dir is not None:
        classes = sorted(np.unique(y).tolist())
        plots["roc_curve"] = str(roc_png(y, proba, classes, out_dir / "roc.png"))
    return metrics, plots


def check_gate(registry: Registry, spec: PipelineSpec, metrics: dict[str, Any]) -> tuple[bool, str]:
    """Evaluate ``promote_if``; with no reference version yet, the first candidate passes."""
    assert spec.promote_if is not None
    metric, op, ref_alias, number = parse_gate(spec.promote_if.when)
    if metric not in metrics:
        raise InvalidInput(
            f"promote_if.when: metric '{metric}' is not computed; computed: {', '.join(k for k, v in metrics.items() if isinstance(v, float))}"
        )
    value = float(metrics[metric])
    if ref_alias is None:
        threshold = number
        what = f"{number}"
    else:
        try:
            ref = registry.resolve(f"{spec.registration.name}@{ref_alias}")
        except (AliasNotFound, ModelNotFound):  # nothing to beat yet
            return True, f"no '{ref_alias}' version yet: promoted ({metric}={value:.4f})"
        if metric not in ref.metrics:
            raise InvalidInput(
                f"promote_if.when: {spec.registration.name}@{ref_alias} (v{ref.version}) has no metric '{metric}'"
            )
        threshold = float(ref.metrics[metric]) + number
        what = f"{ref_alias} v{ref.version} {ref.metrics[metric]:.4f} {'+' if number >= 0 else '-'} {abs(number)}"
    ok = {">": value > threshold, ">=": value >= threshold, "<": value < threshold, "<=": value <= threshold}[
        op
    ]
    return ok, f"{metric}={value:.4f} {op} {what} (= {threshold:.4f}): {'pass' if ok else 'fail'}"


def run_pipeline(
    spec: PipelineSpec, registry: Registry, *, show_progress: bool = True, actor: str = "pipeline"
) -> RunResult:
    """Train, evaluate and register the best model of ``spec``; apply the promotion gate."""
    if spec.federated is not None:
        from modelhost.pipelines.federated import run_federated

        return run_federated(spec, registry, show_progress=show_progress, actor=actor)
    ds = load_dataset(spec.data, spec.task)
    trainer = make_trainer(spec, ds)
    x_tr, x_te, y_tr, y_te = split(spec, ds)
    best = search(spec, trainer, x_tr, y_tr, show_progress=show_progress)
    fitted = trainer.fit(best.kind, best.params, x_tr, y_tr)
    extra = {"cv_" + spec.selection_metric: best.cv_mean, "cv_std": best.cv_std}
    return register_fitted(
        spec, registry, ds, fitted, extra, {"model": best.kind, **best.params}, x_te, y_te, best, actor
    )


def register_fitted(
    spec: PipelineSpec,
    registry: Registry,
    ds: Dataset,
    fitted: Fitted,
    extra_metrics: dict[str, Any],
    params: dict[str, Any],
    x_te: np.ndarray,
    y_te: np.ndarray,
    best: SearchResult | None,
    actor: str,
) -> RunResult:
    """Evaluate on the held-out set, save plots, register with lineage, set alias, apply the gate."""
    out_dir = (
        Path(spec.output_dir) if spec.output_dir else registry.settings.home / "runs" / spec.registration.name
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics, plots = evaluate(spec, fitted, x_te, y_te, out_dir)
    metrics.update(extra_metrics)
    gate: tuple[bool, str] | None = None
    if spec.promote_if is not None:
        gate = check_gate(registry, spec, metrics)  # before registering: a bad gate registers nothing
    lineage = {
        "pipeline": spec.name,
        "data_hash": data_hash(ds),
        "code_version": code_version(),
        "data_spec": spec.data.model_dump(),
        "split": {
            "test_size": spec.test_size,
            "seed": spec.seed,
            "task": spec.task,
            "stratified": spec.task == "classification",
        },
        "feature_names": ds.feature_names,
        "target": ds.target,
        "reference_profile": reference_profile(ds.x, spec.seed),
    }
    tags: dict[str, Any] = {
        "framework": spec.framework,
        "task": spec.task,
        **({"plots": plots} if plots else {}),
    }
    if best is not None:
        tags["search"] = {"trials": best.trials, "pruned": best.pruned}
    with tempfile.TemporaryDirectory(prefix="modelhost-train-") as tmp:
        artifact = fitted.save(Path(tmp))
        info = registry.register_version(
            spec.registration.name,
            artifact,
            description=spec.registration.description or f"pipeline {spec.name}",
            metrics=metrics,
            params=_jsonable(params),
            tags=tags,
            lineage=lineage,
            task=spec.task,
            actor=actor,
        )
    if spec.registration.alias:
        registry.set_alias(
            spec.registration.name,
            spec.registration.alias,
            info.version,
            actor=actor,
            reason=f"pipeline {spec.name}",
        )
    result = RunResult(info, metrics, best, plots)
    if gate is not None and spec.promote_if is not None:
        result.promoted, result.gate = gate
        if gate[0]:
            registry.set_alias(
                spec.registration.name,
                spec.promote_if.alias,
                info.version,
                actor=actor,
                reason=f"promote_if {gate[1]}",
            )
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
