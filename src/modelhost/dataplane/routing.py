"""Routes: what a model reference (``name``, ``name@alias``, or an exact version) serves right now —
the primary version plus an optional canary taking a share of the traffic."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from modelhost.registry import DeploymentInfo, Registry, VersionInfo
from modelhost.registry.records import DEFAULT_ALIAS, parse_model_ref


@dataclass(frozen=True)
class Route:
    primary: VersionInfo
    canary: VersionInfo | None = None
    percent: float = 0.0
    expires: float = 0.0
    deployment: DeploymentInfo | None = None

    def versions(self) -> set[int]:
        return {self.primary.version} | ({self.canary.version} if self.canary else set())

    def choose(self, routing_key: str | None = None) -> VersionInfo:
        """Primary, or the canary for ``percent`` % of requests; sticky when a routing key is given."""
        if self.canary is None or self.percent <= 0:
            return self.primary
        if routing_key:
            digest = hashlib.sha256(routing_key.encode()).digest()
            bucket = int.from_bytes(digest[:8], "big") % 10_000 / 100.0
        else:
            bucket = random.random() * 100.0
        return self.canary if bucket < self.percent else self.primary


def build_route(registry: Registry, ref: str, version: str | None, expires: float) -> Route:
    """Resolve a reference against the registry (blocking; run it in a thread)."""
    primary = registry.resolve(ref, version)
    deployment = registry.get_deployment(primary.model)
    name, alias = parse_model_ref(ref)
    effective = alias or (DEFAULT_ALIAS if DEFAULT_ALIAS in primary.aliases else None)
    canary = deployment.canaries.get(effective) if version is None and effective is not None else None
    if canary is None or canary.version == primary.version:
        return Route(primary, expires=expires, deployment=deployment)
    return Route(primary, registry.get_version(name, canary.version), canary.percent, expires, deployment)
