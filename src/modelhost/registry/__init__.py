"""Model registry: models, immutable versions, aliases with history, and the artifact store."""

from modelhost.registry.records import AliasEvent, AliasInfo, Canary, DeploymentInfo, ModelInfo, VersionInfo
from modelhost.registry.service import Registry

__all__ = ["AliasEvent", "AliasInfo", "Canary", "DeploymentInfo", "ModelInfo", "Registry", "VersionInfo"]
