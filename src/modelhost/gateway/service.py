"""The Gateway: one object per server holding keys, limits, metering and audit.

Protocol routes use it through the FastAPI dependencies in serving/deps.py; routes that know
their token counts only after parsing the body (the OpenAI-compatible LLM routes) call
``admit`` and ``Reservation.settle`` directly::

    usage = await gateway.admit(key, model, input_tokens=len(prompt), max_tokens=req.max_tokens)
    try:
        ...generate...
    finally:
        await usage.settle(output_tokens=generated)
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

import anyio

from modelhost.config import Settings
from modelhost.errors import InvalidInput, Unauthorized
from modelhost.gateway.audit import AuditLog
from modelhost.gateway.keys import ANONYMOUS, ApiKey, KeyService
from modelhost.gateway.limits import MICRO, Admission, Backend, Limiter, MemoryBackend, RedisBackend
from modelhost.gateway.metering import Meter, price_for
from modelhost.registry import Registry

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_auth_mode(settings: Settings) -> str:
    """``none`` or ``keys``; refuses ``none`` when the server would listen beyond loopback."""
    if settings.auth == "auto":
        return "none" if is_loopback(settings.host) else "keys"
    if settings.auth == "none" and not is_loopback(settings.host):
        raise InvalidInput(
            f"MODELHOST_AUTH=none is only allowed when binding to loopback, not {settings.host}: "
            "anyone on the network could use the models. Create API keys (modelhost keys create) instead."
        )
    return settings.auth


def make_backend(settings: Settings) -> Backend:
    if settings.rate_limit_backend == "redis":
        if not settings.redis_url:
            raise InvalidInput("MODELHOST_RATE_LIMIT_BACKEND=redis needs MODELHOST_REDIS_URL")
        return RedisBackend(settings.redis_url)
    return MemoryBackend()


if TYPE_CHECKING:
    from modelhost.monitoring.metrics import Metrics


class Reservation:
    """What one admitted request may use; ``settle`` records actual usage and frees the rest."""

    def __init__(
        self,
        gateway: Gateway,
        key: ApiKey,
        model: str,
        version: str,
        admission: Admission,
        input_tokens: int,
        max_tokens: int,
    ) -> None:
        self.gateway = gateway
        self.key = key
        self.model = model
        self.version = version
        self.admission = admission
        self.input_tokens = input_tokens
        self.max_tokens = max_tokens
        self.rows = 0
        self.error = False
        self.settled = False

    @property
    def headers(self) -> dict[str, str]:
        return self.admission.headers

    async def settle(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int = 0,
        rows: int | None = None,
        error: bool | None = None,
        version: str | None = None,
    ) -> None:
        """Record actual usage and give back what was reserved but not used (idempotent)."""
        if self.settled:
            return
        self.settled = True
        used_in = self.input_tokens if input_tokens is None else input_tokens
        out = min(output_tokens, self.max_tokens) if self.max_tokens else output_tokens
        version = version or self.version
        cost = price_for(self.gateway.settings.prices, self.model, version).cost(used_in, out)
        self.gateway.meter.record(
            self.key.key_id,
            self.model,
            version,
            input_tokens=used_in,
            output_tokens=out,
            rows=self.rows if rows is None else rows,
            error=self.error if error is None else error,
            cost=cost,
        )
        await self.gateway.limiter.release(
            self.admission, tokens=used_in + out, cost_micro=round(cost * MICRO)
        )
        metrics = self.gateway.metrics
        if metrics is not None:
            if used_in + out:
                metrics.key_tokens.labels(self.key.key_id, self.model.partition("@")[0]).inc(used_in + out)
            if cost:
                metrics.key_cost.labels(self.key.key_id).inc(cost)


class Gateway:
    def __init__(self, registry: Registry, settings: Settings, backend: Backend | None = None) -> None:
        self.settings = settings
        self.mode = resolve_auth_mode(settings)
        self.keys = KeyService(registry.session, settings)
        self.limiter = Limiter(backend or make_backend(settings), fail_open=settings.limits_fail_open)
        self.meter = Meter(registry.session)
        self.audit = AuditLog(registry.session)
        self.metrics: Metrics | None = None  # set by the app: tokens and cost per key id

    @property
    def open(self) -> bool:
        """True in auth mode ``none``: requests without a key act as the anonymous caller."""
        return self.mode == "none"

    async def authenticate(self, raw: str | None) -> ApiKey:
        """The key presented (verified), the anonymous caller in mode ``none``, else 401.

        In mode ``none`` a placeholder that is not a modelhost key (the OpenAI SDK insists on sending
        *some* key, e.g. "EMPTY") counts as no key, as local OpenAI-compatible servers treat it; a value
        shaped like a modelhost key is always verified, so its scopes and limits apply."""
        if raw is not None and self.open and not raw.startswith("mh_"):
            raw = None
        if raw is None:
            if self.open:
                return ANONYMOUS
            raise Unauthorized(
                "missing API key: send 'Authorization: Bearer mh_live_...' (or 'X-API-Key: mh_live_...')"
            )
        key = self.keys.cached(raw)
        if key is None:
            key = await anyio.to_thread.run_sync(self.keys.verify, raw)
        return key

    async def admit(
        self,
        key: ApiKey,
        model: str,
        version: str = "",
        *,
        input_tokens: int = 0,
        max_tokens: int = 0,
    ) -> Reservation:
        """Reserve one request, ``input_tokens + max_tokens`` tokens and the worst-case cost."""
        if input_tokens < 0 or max_tokens < 0:
            raise InvalidInput("token counts must not be negative")
        admission = Admission()
        if key.limits:
            worst = price_for(self.settings.prices, model, version or None).cost(input_tokens, max_tokens)
            admission = await self.limiter.admit(
                key.key_id,
                key.limits,
                model,
                tokens=input_tokens + max_tokens,
                cost_micro=round(worst * MICRO),
            )
        return Reservation(self, key, model, version, admission, input_tokens, max_tokens)

    def flush(self) -> None:
        try:
            self.meter.flush()
        except Exception as exc:  # a busy database must not kill the flush loop; counts are kept
            log.warning("usage flush failed, will retry: %s", exc)

    async def run_flusher(self) -> None:
        """Flush usage every MODELHOST_USAGE_FLUSH_S until cancelled (then once more)."""
        try:
            while True:
                await anyio.sleep(self.settings.usage_flush_s)
                await anyio.to_thread.run_sync(self.flush)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.flush)

    async def close(self) -> None:
        await self.limiter.backend.close()
