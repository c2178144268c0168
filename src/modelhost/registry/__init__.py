"""Model registry: models, immutable versions, aliases with history, and the artifact store."""

from modelhost.registry.service import AliasEvent, AliasInfo, ModelInfo, Registry, VersionInfo

__all__ = ["AliasEvent", "AliasInfo", "ModelInfo", "Registry", "VersionInfo"]
