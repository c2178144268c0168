"""The Helm chart renders to valid, consistent Kubernetes objects (and passes ``helm lint`` where helm is)."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.gotemplate import render

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "modelhost"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _objects(overrides: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    values = _merge(yaml.safe_load((CHART / "values.yaml").read_text()), overrides or {})
    objects: dict[str, dict[str, Any]] = {}
    for template in sorted((CHART / "templates").glob("*.yaml")):
        for doc in yaml.safe_load_all(render(template.read_text(), values, release="rel")):
            if doc:
                assert {"apiVersion", "kind", "metadata"} <= set(doc), template.name
                assert doc["metadata"]["name"] == "rel-modelhost"
                objects[doc["kind"]] = doc
    return objects


SECRETS = {
    "secret": {
        "MODELHOST_DATABASE_URL": "postgresql+psycopg://modelhost:pw@postgres:5432/modelhost",
        "MODELHOST_KEY_SECRET": "0" * 64,
    }
}


def test_the_chart_ships_no_default_secret() -> None:
    assert not _objects()["Secret"].get("stringData")


def test_default_values_render_a_consistent_release() -> None:
    objs = _objects(SECRETS)
    assert set(objs) == {
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PersistentVolumeClaim",
    }
    deploy = objs["Deployment"]
    pod = deploy["spec"]["template"]
    assert "replicas" not in deploy["spec"]  # the HPA owns the replica count
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    container = pod["spec"]["containers"][0]
    assert container["image"] == "modelhost:0.1.0"
    refs = [next(iter(e.values()))["name"] for e in container["envFrom"]]
    assert refs == [objs["ConfigMap"]["metadata"]["name"], objs["Secret"]["metadata"]["name"]]
    assert container["resources"]["requests"]["cpu"] == "1"
    assert objs["Service"]["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]
    assert pod["metadata"]["labels"] == deploy["spec"]["selector"]["matchLabels"]
    assert objs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == deploy["metadata"]["name"]
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "rel-modelhost"
    assert objs["ConfigMap"]["data"]["MODELHOST_GRPC_PORT"] == "8001"  # strings, as env values must be
    assert "postgresql+psycopg://" in objs["Secret"]["stringData"]["MODELHOST_DATABASE_URL"]


def test_s3_fixed_replicas_external_secret_and_service_monitor() -> None:
    objs = _objects(
        {
            "s3": {"enabled": True, "endpointUrl": "http://minio:9000"},
            "persistence": {"enabled": False},
            "autoscaling": {"enabled": False},
            "replicaCount": 3,
            "existingSecret": "prod-modelhost",
            "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        }
    )
    assert set(objs) == {"ConfigMap", "Deployment", "Service", "ServiceMonitor"}
    data = objs["ConfigMap"]["data"]
    assert (
        data["MODELHOST_ARTIFACT_URL"].startswith("s3://") and data["AWS_ENDPOINT_URL"] == "http://minio:9000"
    )
    spec = objs["Deployment"]["spec"]
    assert spec["replicas"] == 3
    assert spec["template"]["spec"]["containers"][0]["envFrom"][1]["secretRef"]["name"] == "prod-modelhost"
    assert spec["template"]["spec"]["volumes"][0] == {"name": "data", "emptyDir": {}}
    monitor = objs["ServiceMonitor"]
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


@pytest.mark.skipif(shutil.which("helm") is None, reason="helm is not installed; the chart is rendered above")
def test_helm_lint_and_template() -> None:
    subprocess.run(["helm", "lint", str(CHART)], check=True, capture_output=True)
    out = subprocess.run(["helm", "template", "rel", str(CHART)], check=True, capture_output=True, text=True)
    assert "kind: Deployment" in out.stdout
