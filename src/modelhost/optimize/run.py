"""``modelhost optimize``: derive ONNX / int8 / pruned / distilled versions from a registered one,
register each as a new version of the same model, and measure every version side by side."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelhost.errors import InvalidInput
from modelhost.optimize.report import Measurement, measure
from modelhost.pipelines.loaded import LoadedVersion
from modelhost.registry import Registry, VersionInfo
from modelhost.registry.formats import ONNX, SAFETENSORS, SKOPS

# Lineage keys copied to derived versions so explain/fairness/optimize can rebuild their data.
_CARRIED = ("data_spec", "split", "feature_names", "target", "reference_profile", "data_hash", "pipeline")


@dataclass
class OptimizeRequest:
    to_onnx: bool = False
    quantize: str | None = None
    prune: float | None = None
    distill_from: str | None = None
    student_hidden: tuple[int, ...] = (32,)
    temperature: float = 2.0


def _register(
    registry: Registry, base: VersionInfo, path: Path, step: str, params: dict[str, Any]
) -> VersionInfo:
    lineage = {k: base.lineage[k] for k in _CARRIED if k in base.lineage}
    lineage["optimized_from"] = {
        "model": base.model,
        "version": base.version,
        "sha256": base.sha256,
        "step": step,
    }
    return registry.register_version(
        base.model,
        path,
        description=f"{step} of v{base.version}",
        params={**params, "step": step},
        tags={**{k: v for k, v in base.tags.items() if k in ("task",)}, "optimization": step},
        lineage=lineage,
        actor="optimize",
    )


def _onnx_of(loaded: LoadedVersion, out: Path) -> Path:
    """An ONNX file equivalent to the loaded version (converted from skops or safetensors)."""
    fmt = loaded.info.format
    if fmt == ONNX:
        return loaded.registry.artifact_path(loaded.info)
    if fmt == SKOPS:
        from modelhost.optimize.onnx_export import sklearn_to_onnx

        return sklearn_to_onnx(loaded.runtime.model, out)  # type: ignore[attr-defined]
    if fmt == SAFETENSORS:
        from modelhost.optimize.onnx_export import torch_to_onnx
        from modelhost.runtimes import torch_arch

        module, spec = torch_arch.load(loaded.registry.artifact_path(loaded.info))
        return torch_to_onnx(module, spec, out)
    raise InvalidInput(f"--onnx/--quantize: converting {fmt} models to ONNX is not supported")


def optimize(registry: Registry, ref: str, req: OptimizeRequest, repeats: int = 200) -> list[Measurement]:
    """Run the requested steps; returns measurements, the base version first."""
    if not (req.to_onnx or req.quantize or req.prune or req.distill_from):
        raise InvalidInput("nothing to do: give --onnx, --quantize, --prune and/or --distill-from")
    base = LoadedVersion(registry, ref)
    data = base.split()
    rows = [measure("base", base, data.x_test, data.y_test, repeats)]
    # Every step runs before anything is registered: a failing step leaves the registry unchanged.
    pending: list[tuple[str, Path, str, dict[str, Any]]] = []
    produced: list[tuple[str, VersionInfo]] = []
    with tempfile.TemporaryDirectory(prefix="modelhost-optimize-") as tmp_dir:
        tmp = Path(tmp_dir)
        onnx_path: Path | None = None
        if req.to_onnx or req.quantize:
            onnx_path = _onnx_of(base, tmp / "model.onnx")
            if req.to_onnx and base.info.format != ONNX:
                pending.append(("onnx", onnx_path, "onnx", {}))
        if req.quantize:
            from modelhost.optimize.quantize import quantize_onnx

            assert onnx_path is not None
            q = quantize_onnx(onnx_path, tmp / "model.int8.onnx", req.quantize)
            pending.append((f"quantize {req.quantize}", q, f"quantize-{req.quantize}", {}))
        if req.prune:
            if base.info.format != SAFETENSORS:
                raise InvalidInput(
                    f"--prune works on PyTorch (safetensors) versions; {base.ref} is {base.info.format}"
                )
            from modelhost.optimize.prune import prune_magnitude
            from modelhost.runtimes import torch_arch

            module, spec = torch_arch.load(registry.artifact_path(base.info))
            stats = prune_magnitude(module, req.prune)
            path = torch_arch.save(module, spec, tmp / "model.pruned.safetensors")
            pending.append((f"prune {req.prune}", path, f"prune-{req.prune}", stats))
        if req.distill_from:
            from modelhost.optimize.distill import distill
            from modelhost.runtimes import torch_arch

            teacher = LoadedVersion(registry, req.distill_from)
            if not teacher.is_classifier:
                raise InvalidInput(
                    "--distill-from: distillation needs a classifier teacher (class probabilities)"
                )
            classes = list(teacher.info.signature.extra.get("classes") or sorted(set(data.y_train.tolist())))
            student = distill(
                teacher.predict_proba(data.x_train),
                data.x_train,
                classes,
                req.student_hidden,
                req.temperature,
            )
            teacher.close()
            path = torch_arch.save(student.module, student.spec, tmp / "student.safetensors")
            params = {
                "teacher": teacher.ref,
                "hidden": list(req.student_hidden),
                "temperature": req.temperature,
            }
            pending.append(("distill", path, "distill", params))
        for label, path, step, params in pending:
            produced.append((label, _register(registry, base.info, path, step, params)))
    base.close()
    for label, info in produced:
        loaded = LoadedVersion(registry, info.model, version=info.version)
        rows.append(measure(label, loaded, data.x_test, data.y_test, repeats))
        loaded.close()
    return rows
