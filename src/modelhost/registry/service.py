"""The registry API: register immutable versions, move aliases (with history and protection), resolve.

This is the only module that writes registry tables; CLI, SDK and server all go through it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelhost import __version__
from modelhost.errors import InvalidInput, VersionNotFound
from modelhost.registry.aliases import AliasesMixin
from modelhost.registry.core import audit
from modelhost.registry.deployments import DeploymentsMixin
from modelhost.registry.formats import ONNX, SKOPS, detect_format
from modelhost.registry.monitoring import MonitoringMixin
from modelhost.registry.records import (
    DEFAULT_ALIAS,
    ModelInfo,
    VersionInfo,
    check_json_dict,
    check_model_name,
    parse_model_ref,
    parse_version,
    version_info,
)
from modelhost.registry.tables import Alias, Model, ModelVersion, utcnow


class Registry(AliasesMixin, DeploymentsMixin, MonitoringMixin):
    """Registry service over one database and one artifact store."""

    def register_version(
        self,
        name: str,
        path: str | Path,
        *,
        format: str | None = None,
        convert_onnx: bool = False,
        description: str = "",
        metrics: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        lineage: dict[str, Any] | None = None,
        task: str | None = None,
        actor: str = "",
    ) -> VersionInfo:
        """Validate an artifact (safe format, loadable, signature), store it pinned, add a version.

        ``task`` is recorded on the model; for a transformers directory it also picks the pipeline
        (text-classification, summarization, ...), inferred from config.json when not given."""
        check_model_name(name)
        metrics, params = check_json_dict("metrics", metrics), check_json_dict("params", params)
        tags, lineage = check_json_dict("tags", tags), check_json_dict("lineage", lineage)
        path = Path(path)
        detected = detect_format(path)
        if format is not None and format != detected:
            raise InvalidInput(f"--format {format} was given but {path.name} is a {detected} file")
        lineage.setdefault("source", str(path))
        lineage["modelhost_version"] = __version__
        with tempfile.TemporaryDirectory(prefix="modelhost-register-") as tmp:
            if convert_onnx:
                if detected != SKOPS:
                    raise InvalidInput(f"--convert-onnx converts scikit-learn (skops) files, not {detected}")
                from modelhost.optimize.onnx_export import sklearn_to_onnx
                from modelhost.registry.store import sha256_file
                from modelhost.runtimes.sklearn import load_skops

                lineage["converted_from"] = {"format": SKOPS, "sha256": sha256_file(path)}
                path = sklearn_to_onnx(load_skops(path, self.settings), Path(tmp) / f"{path.stem}.onnx")
                detected = ONNX
            # Imported here: runtimes import registry.formats, so a module-level import would be circular.
            from modelhost.runtimes import TransformersPipelineRuntime, runtime_for

            runtime_cls = runtime_for(detected, path, task)
            if runtime_cls is TransformersPipelineRuntime:
                # the task picks the pipeline; the model records the (possibly inferred) task
                signature = TransformersPipelineRuntime.inspect_task(path, self.settings, task)
                task = str(signature.extra["task"])
            else:
                signature = runtime_cls.inspect(path, self.settings)
            stored = self.store.put(path)
        for _attempt in range(5):
            with self.session() as s:
                model = s.scalar(select(Model).where(Model.name == name))
                if model is None:
                    model = Model(name=name, description="", task=task)
                    s.add(model)
                    s.flush()
                elif task and not model.task:
                    model.task = task
                number = (
                    s.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id))
                    or 0
                ) + 1
                row = ModelVersion(
                    model_id=model.id,
                    version=number,
                    format=detected,
                    runtime=runtime_cls.name,
                    artifact_uri=stored.uri,
                    sha256=stored.sha256,
                    size_bytes=stored.size_bytes,
                    signature=signature.to_dict(),
                    metrics=metrics,
                    params=params,
                    tags=tags,
                    lineage=lineage,
                    description=description,
                    created_by=actor,
                    created_at=utcnow(),
                )
                s.add(row)
                audit(s, actor, "version.register", f"model:{name}/{number}", sha256=stored.sha256)
                try:
                    s.commit()
                except IntegrityError:
                    s.rollback()  # another writer took this number (or created the model); try again
                    continue
                return version_info(row, name)
        raise InvalidInput(f"could not allocate a version number for '{name}' (too many concurrent writers)")

    def list_models(self) -> list[ModelInfo]:
        with self.session() as s:
            models = s.scalars(select(Model).order_by(Model.name)).all()
            return [self._model_info(s, m) for m in models]

    def _model_info(self, s: Session, m: Model) -> ModelInfo:
        latest = s.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == m.id))
        aliases = {
            a: v
            for a, v in s.execute(
                select(Alias.name, ModelVersion.version)
                .join(ModelVersion, Alias.version_id == ModelVersion.id)
                .where(Alias.model_id == m.id)
            ).all()
        }
        return ModelInfo(m.name, m.description, m.task, m.created_at, latest, aliases)

    def get_model(self, name: str) -> ModelInfo:
        with self.session() as s:
            return self._model_info(s, self._model(s, name))

    def list_versions(self, name: str) -> list[VersionInfo]:
        with self.session() as s:
            model = self._model(s, name)
            by_version = self._aliases_by_version(s, model.id)
            rows = s.scalars(
                select(ModelVersion).where(ModelVersion.model_id == model.id).order_by(ModelVersion.version)
            ).all()
            return [version_info(v, name, tuple(sorted(by_version.get(v.version, [])))) for v in rows]

    def get_version(self, name: str, version: int | str) -> VersionInfo:
        number = parse_version(version)
        with self.session() as s:
            model = self._model(s, name)
            row = s.scalar(
                select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == number)
            )
            if row is None:
                known = s.scalars(select(ModelVersion.version).where(ModelVersion.model_id == model.id)).all()
                raise VersionNotFound(
                    f"model '{name}' has no version {number} (versions: {', '.join(map(str, known)) or 'none'})"
                )
            by_version = self._aliases_by_version(s, model.id)
            return version_info(row, name, tuple(sorted(by_version.get(number, []))))

    def resolve(self, ref: str, version: str | int | None = None) -> VersionInfo:
        """Resolve ``name``, ``name@alias`` or ``name`` + version to one version.

        A plain name means the 'production' alias if set, else the latest version.
        """
        name, alias = parse_model_ref(ref)
        if alias is not None and version is not None:
            raise InvalidInput(f"give either an alias or a version for '{name}', not both")
        if version is not None:
            return self.get_version(name, version)
        if alias is not None:
            return self.get_version(name, self.get_alias(name, alias).version)
        with self.session() as s:
            model = self._model(s, name)
            prod = s.scalar(
                select(ModelVersion.version)
                .join(Alias, Alias.version_id == ModelVersion.id)
                .where(Alias.model_id == model.id, Alias.name == DEFAULT_ALIAS)
            )
            latest = s.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id))
        if prod is None and latest is None:
            raise VersionNotFound(f"model '{name}' has no versions yet")
        return self.get_version(name, prod if prod is not None else latest)  # type: ignore[arg-type]

    def artifact_path(self, v: VersionInfo) -> Path:
        """A local path to the version's artifact, verified against its sha256 pin."""
        return self.store.fetch(v.artifact_uri, v.sha256)
