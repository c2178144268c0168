"""Model selection: Optuna over candidates and their ranges, scored by (stratified) k-fold CV,
with median pruning after each fold and a Rich progress bar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from modelhost.errors import InvalidInput
from modelhost.pipelines.evaluate import LOWER_IS_BETTER, score
from modelhost.pipelines.spec import CandidateSpec, PipelineSpec, Range
from modelhost.pipelines.trainer import Trainer


@dataclass
class SearchResult:
    kind: str
    params: dict[str, Any]
    cv_mean: float
    cv_std: float
    trials: int
    pruned: int


def _sample(trial: Any, prefix: str, name: str, r: Range) -> Any:
    key = f"{prefix}.{name}"
    if r.choices is not None:
        # Optuna categorical choices must be scalars; lists (hidden layer sizes) go by index.
        i = trial.suggest_categorical(key, list(range(len(r.choices))))
        return r.choices[i]
    assert r.low is not None and r.high is not None
    if r.int:
        return trial.suggest_int(key, int(r.low), int(r.high), log=r.log)
    return trial.suggest_float(key, r.low, r.high, log=r.log)


def _folds(spec: PipelineSpec, x: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    if spec.cv.folds >= 2:
        stratify = spec.task == "classification" and spec.cv.stratified
        splitter = (StratifiedKFold if stratify else KFold)(
            n_splits=spec.cv.folds, shuffle=True, random_state=spec.seed
        )
        try:
            return list(splitter.split(x, y))
        except ValueError as exc:
            raise InvalidInput(f"cv.folds: {exc}") from None
    idx = np.arange(len(y))
    tr, va = train_test_split(
        idx, test_size=0.2, random_state=spec.seed, stratify=y if spec.task == "classification" else None
    )
    return [(tr, va)]


def cross_validate(
    trainer: Trainer,
    kind: str,
    params: dict[str, Any],
    spec: PipelineSpec,
    x: np.ndarray,
    y: np.ndarray,
    trial: Any = None,
) -> list[float]:
    """Score one configuration on each fold; with a trial, report after each fold so Optuna can prune."""
    import optuna

    metric = spec.selection_metric
    scores: list[float] = []
    for i, (tr, va) in enumerate(_folds(spec, x, y)):
        fitted = trainer.fit(kind, params, x[tr], y[tr])
        try:
            scores.append(score(metric, y[va], fitted.predict(x[va]), fitted.predict_proba(x[va])))
        except KeyError:
            raise InvalidInput(f"metric: '{metric}' is not computed for a {spec.task} task") from None
        if trial is not None:
            trial.report(float(np.mean(scores)), i)
            if spec.search.pruning and trial.should_prune():
                raise optuna.TrialPruned()
    return scores


def search(
    spec: PipelineSpec, trainer: Trainer, x: np.ndarray, y: np.ndarray, show_progress: bool = True
) -> SearchResult:
    """Run the Optuna study; returns the best candidate and its parameters."""
    import optuna
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    known = trainer.kinds()
    for i, c in enumerate(spec.candidates):
        if c.type not in known:
            raise InvalidInput(
                f"candidates.{i}.type: '{c.type}' is not a {spec.framework} {spec.task} model; known: {', '.join(known)}"
            )
    by_name = {f"{i}:{c.type}": c for i, c in enumerate(spec.candidates)}
    has_space = any(c.search for c in spec.candidates) or len(spec.candidates) > 1
    n_trials = spec.search.trials if has_space else 1
    direction: Literal["minimize", "maximize"] = (
        "minimize" if spec.selection_metric in LOWER_IS_BETTER else "maximize"
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=spec.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )
    stds: dict[int, float] = {}

    def params_for(trial: Any) -> tuple[CandidateSpec, dict[str, Any]]:
        name = (
            trial.suggest_categorical("candidate", list(by_name)) if len(by_name) > 1 else next(iter(by_name))
        )
        cand = by_name[name]
        sampled = {k: _sample(trial, name, k, r) for k, r in cand.search.items()}
        return cand, {**cand.params, **sampled}

    def objective(trial: Any) -> float:
        cand, params = params_for(trial)
        trial.set_user_attr("kind", cand.type)
        trial.set_user_attr("params", params)
        scores = cross_validate(trainer, cand.type, params, spec, x, y, trial)
        stds[trial.number] = float(np.std(scores))
        return float(np.mean(scores))

    with Progress(
        TextColumn("[bold]search[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show_progress,
    ) as progress:
        task = progress.add_task(spec.selection_metric, total=n_trials)

        def tick(study: Any, trial: Any) -> None:
            best = f"best {spec.selection_metric}={study.best_value:.4f}" if study.best_trials else ""
            progress.update(task, advance=1, description=best)

        # Errors in our own code (bad params) surface at once instead of being recorded as failed trials.
        study.optimize(
            objective, n_trials=n_trials, timeout=spec.search.timeout_s, callbacks=[tick], catch=()
        )
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise InvalidInput("search: every trial was pruned or failed; widen the ranges or add trials")
    best = study.best_trial
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return SearchResult(
        kind=str(best.user_attrs["kind"]),
        params=dict(best.user_attrs["params"]),
        cv_mean=float(best.value),  # type: ignore[arg-type]
        cv_std=stds.get(best.number, 0.0),
        trials=len(study.trials),
        pruned=pruned,
    )
