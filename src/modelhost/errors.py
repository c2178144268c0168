"""One error tree for the whole platform; each protocol maps it to its own error shape once."""

from __future__ import annotations


class ModelhostError(Exception):
    """Base error. ``status_code`` is the HTTP status a protocol adapter should answer with."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The request field at fault, where one is (OpenAI's error shape reports it as "param").
        self.param = param


class InvalidInput(ModelhostError):
    status_code = 400
    code = "invalid_input"


class UnsafeArtifact(InvalidInput):
    """An artifact in an unsafe format (pickle, joblib) or with untrusted types."""

    code = "unsafe_artifact"


class ContextLengthExceeded(InvalidInput):
    """Prompt plus requested completion tokens do not fit the model's context window."""

    code = "context_length_exceeded"


class UnsupportedFormat(InvalidInput):
    code = "unsupported_format"


class PayloadTooLarge(ModelhostError):
    status_code = 413
    code = "payload_too_large"


class NotFound(ModelhostError):
    status_code = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class AliasNotFound(NotFound):
    code = "alias_not_found"


class Conflict(ModelhostError):
    status_code = 409
    code = "conflict"


class ProtectedAlias(Conflict):
    code = "protected_alias"


class ImmutableVersion(Conflict):
    code = "immutable_version"


class Unauthorized(ModelhostError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ModelhostError):
    status_code = 403
    code = "forbidden"


class RateLimited(ModelhostError):
    """Too many requests or tokens for a window; ``headers`` carry Retry-After and x-ratelimit-*."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers = headers or {}


class QuotaExceeded(RateLimited):
    """A daily/monthly request or token quota, or a cost budget, is spent."""

    code = "quota_exceeded"


class GatewayUnavailable(ModelhostError):
    """The rate-limit backend (Redis) cannot be reached and the gateway fails closed."""

    status_code = 503
    code = "gateway_unavailable"


class UpstreamUnavailable(ModelhostError):
    """A remote OpenAI-compatible upstream cannot be reached, refused our credentials or failed (5xx)."""

    status_code = 502
    code = "upstream_unavailable"


class UpstreamTimeout(ModelhostError):
    """A remote upstream did not answer within its timeout."""

    status_code = 504
    code = "upstream_timeout"


class UpstreamRejected(ModelhostError):
    """A remote upstream refused the request with a 4xx: the same status goes back to the client."""

    code = "upstream_rejected"

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, param=param)
        self.status_code = status_code
        if code:
            self.code = code
        self.headers = headers or {}


class EncryptionError(ModelhostError):
    """An encrypted artifact cannot be decrypted: no key configured, wrong key, or tampered data."""

    status_code = 500
    code = "encryption_error"


class Overloaded(RateLimited):
    """A model's request queue is full (LLM scheduler); the client should retry later."""

    code = "overloaded"


class ModelNotReady(ModelhostError):
    status_code = 503
    code = "model_not_ready"


class RequestTimeout(ModelhostError):
    """The model did not answer within the request timeout."""

    status_code = 504
    code = "timeout"


class ArtifactIntegrityError(ModelhostError):
    """The stored artifact no longer matches its sha256 pin (tampering or corruption)."""

    status_code = 500
    code = "artifact_integrity"
