"""deploy/docker-compose.yml parses and wires the scale and monitoring profiles (no Docker here)."""

from __future__ import annotations

from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_compose_profiles_and_files() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "profiles" not in services["modelhost"]  # `up` alone starts the server
    assert {n for n, s in services.items() if "scale" in s.get("profiles", [])} == {
        "postgres",
        "redis",
        "minio",
    }
    assert {n for n, s in services.items() if "monitoring" in s.get("profiles", [])} == {
        "prometheus",
        "grafana",
    }
    assert services["modelhost"]["build"]["dockerfile"] == "deploy/Dockerfile"
    for service in services.values():  # every file mounted from the repository exists
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), source
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / "scale.env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    # The example points modelhost at the compose services by their names.
    assert "@postgres:5432/" in example["MODELHOST_DATABASE_URL"]
    assert example["AWS_ENDPOINT_URL"] == "http://minio:9000"
    assert example["MODELHOST_ARTIFACT_URL"].startswith("s3://")
