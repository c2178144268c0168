"""Rate limits, quotas and budgets with reservation and settlement.

On admission a request reserves, in one atomic step, everything it may use: one request, its input
tokens plus ``max_tokens``, a concurrency slot and its worst-case cost, against every limit of its
key (and of the model). If any counter would go over its limit nothing is taken and the request
gets 429. When the request ends it settles: unused tokens and cost are given back and the slot is
freed. Because the worst case is taken up front, 64 concurrent requests can never overspend.

Backends: ``MemoryBackend`` (one process) and ``RedisBackend`` (every replica shares the counters;
check-and-increment is one Lua script). Windows are computed from the backend's clock (Redis: the
Redis server's), so replicas with skewed clocks still agree on which window they count in.
"""

from __future__ import annotations

import calendar
import fnmatch
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from modelhost.errors import GatewayUnavailable, InvalidInput, QuotaExceeded, RateLimited

log = logging.getLogger(__name__)

MICRO = 1_000_000  # costs are counted in integer millionths so counters stay exact
_CONCURRENCY_TTL_S = 3600  # a slot leaked by a crashed replica frees itself after this


@dataclass(frozen=True)
class Limit:
    """One counter to check: ``name`` plus a window (minute, day, month, total or concurrent)."""

    name: str
    kind: str  # requests | tokens | cost | concurrency
    window: str  # minute | day | month | total | concurrent
    limit: int
    label: str  # the setting name shown in messages (rpm, tokens_per_day, ...)


_LIMITS: dict[str, tuple[str, str]] = {
    "rpm": ("requests", "minute"),
    "tpm": ("tokens", "minute"),
    "concurrency": ("concurrency", "concurrent"),
    "requests_per_day": ("requests", "day"),
    "requests_per_month": ("requests", "month"),
    "tokens_per_day": ("tokens", "day"),
    "tokens_per_month": ("tokens", "month"),
    "budget_per_day": ("cost", "day"),
    "budget_per_month": ("cost", "month"),
    "budget_total": ("cost", "total"),
}


def limits_for(key_id: str, limits: dict[str, Any], model: str) -> list[Limit]:
    """The counters a request of ``key_id`` on ``model`` must pass (key-wide and per-model ones)."""
    out: list[Limit] = []

    def add(scope: str, spec: dict[str, Any]) -> None:
        for label, value in spec.items():
            if label not in _LIMITS:
                continue
            kind, window = _LIMITS[label]
            amount = round(value * MICRO) if kind == "cost" else int(value)
            # {key_id} is a Redis Cluster hash tag: all counters of one key live in one slot
            out.append(Limit(f"mh:{{{key_id}}}:{scope}{label}", kind, window, amount, label))

    add("", limits)
    name = model.partition("@")[0]
    for pattern, spec in (limits.get("models") or {}).items():
        if fnmatch.fnmatchcase(name, pattern):
            add(f"m:{pattern}:", spec)
    return out


def window_key(limit: Limit, now: float) -> tuple[str, int, float]:
    """(counter key for the current window, ttl in seconds (0: none), seconds until it resets)."""
    if limit.window == "minute":
        start = math.floor(now / 60) * 60
        return f"{limit.name}:{start}", 120, start + 60 - now
    if limit.window == "day":
        start = math.floor(now / 86400) * 86400
        return f"{limit.name}:{start}", 2 * 86400, start + 86400 - now
    if limit.window == "month":
        d = datetime.fromtimestamp(now, UTC)
        nxt = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=UTC)
        return f"{limit.name}:{d.year}{d.month:02d}", 32 * 86400, calendar.timegm(nxt.timetuple()) - now
    if limit.window == "concurrent":
        return limit.name, _CONCURRENCY_TTL_S, 1.0
    return limit.name, 0, math.inf


class Backend(Protocol):
    """Atomic counters: ``reserve`` adds every amount only if no counter would exceed its limit."""

    def now(self) -> float: ...

    async def reserve(
        self, keys: list[str], amounts: list[int], limits: list[int], ttls: list[int]
    ) -> tuple[int, list[int]]:
        """Returns (-1, values after) on success, or (index of the first full counter, values now)."""
        ...

    async def settle(self, keys: list[str], deltas: list[int]) -> None:
        """Add (usually negative) deltas to counters that still exist, never going below zero."""
        ...

    async def close(self) -> None: ...


class MemoryBackend:
    """Counters in this process (one server). Thread-safe, so tests can race it from many threads."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}
        self._expiry: dict[str, float] = {}

    def now(self) -> float:
        return self._clock()

    def _get(self, key: str, now: float) -> int:
        exp = self._expiry.get(key)
        if exp is not None and exp <= now:
            self._values.pop(key, None)
            self._expiry.pop(key, None)
        return self._values.get(key, 0)

    def reserve_sync(
        self, keys: list[str], amounts: list[int], limits: list[int], ttls: list[int]
    ) -> tuple[int, list[int]]:
        with self._lock:
            now = self._clock()
            current = [self._get(k, now) for k in keys]
            for i, (cur, amount, limit) in enumerate(zip(current, amounts, limits, strict=True)):
                if cur + amount > limit:
                    return i, current
            for i, key in enumerate(keys):
                self._values[key] = current[i] + amounts[i]
                if ttls[i] > 0:
                    self._expiry[key] = now + ttls[i]
                current[i] += amounts[i]
            if len(self._values) > 100_000:  # drop expired windows now and then
                for k in [k for k, e in self._expiry.items() if e <= now]:
                    self._get(k, now)
            return -1, current

    async def reserve(
        self, keys: list[str], amounts: list[int], limits: list[int], ttls: list[int]
    ) -> tuple[int, list[int]]:
        return self.reserve_sync(keys, amounts, limits, ttls)

    def settle_sync(self, keys: list[str], deltas: list[int]) -> None:
        with self._lock:
            now = self._clock()
            for key, delta in zip(keys, deltas, strict=True):
                self._get(key, now)  # drops the counter if its window is over
                if key in self._values:
                    self._values[key] = max(0, self._values[key] + delta)

    async def settle(self, keys: list[str], deltas: list[int]) -> None:
        self.settle_sync(keys, deltas)

    def value(self, key: str) -> int:
        with self._lock:
            return self._get(key, self._clock())

    async def close(self) -> None:
        return None


# KEYS: counters; ARGV: amount, limit, ttl for each. All-or-nothing, so no partial reservations.
_RESERVE_LUA = """
local n = #KEYS
local vals = {}
for i = 1, n do
  local cur = tonumber(redis.call('GET', KEYS[i]) or '0')
  if cur + tonumber(ARGV[i * 3 - 2]) > tonumber(ARGV[i * 3 - 1]) then
    for j = 1, n do vals[j] = tonumber(redis.call('GET', KEYS[j]) or '0') end
    return {i, unpack(vals)}
  end
end
for i = 1, n do
  vals[i] = redis.call('INCRBY', KEYS[i], ARGV[i * 3 - 2])
  local ttl = tonumber(ARGV[i * 3])
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) end
end
return {0, unpack(vals)}
"""

_SETTLE_LUA = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local v = redis.call('INCRBY', KEYS[i], ARGV[i])
    if v < 0 then redis.call('SET', KEYS[i], 0, 'KEEPTTL') end
  end
end
return 0
"""


class RedisBackend:
    """Counters in Redis, shared by every replica; reservation and settlement are Lua scripts."""

    def __init__(self, url: str, *, resync_s: float = 30.0) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._reserve = self._redis.register_script(_RESERVE_LUA)
        self._settle = self._redis.register_script(_SETTLE_LUA)
        self._offset = 0.0
        self._synced_at = -math.inf
        self._resync_s = resync_s
        self.url = url

    def now(self) -> float:
        return time.time() + self._offset

    async def _sync_clock(self) -> None:
        # Windows follow the Redis server's clock, so replicas with skewed clocks count alike.
        if time.monotonic() - self._synced_at < self._resync_s:
            return
        before = time.time()
        seconds, micros = await self._redis.time()
        after = time.time()
        self._offset = seconds + micros / 1e6 - (before + after) / 2
        self._synced_at = time.monotonic()

    async def reserve(
        self, keys: list[str], amounts: list[int], limits: list[int], ttls: list[int]
    ) -> tuple[int, list[int]]:
        from redis.exceptions import RedisError

        args: list[int] = []
        for a, limit, t in zip(amounts, limits, ttls, strict=True):
            args += [a, limit, t]
        try:
            await self._sync_clock()
            result = await self._reserve(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise GatewayUnavailable(
                f"the rate-limit backend (Redis at {self.url}) is unreachable: {exc}; requests are refused "
                "until it is back (set MODELHOST_LIMITS_FAIL_OPEN=true to admit them without limits)"
            ) from exc
        return int(result[0]) - 1, [int(v) for v in result[1:]]

    async def settle(self, keys: list[str], deltas: list[int]) -> None:
        from redis.exceptions import RedisError

        try:
            await self._settle(keys=keys, args=deltas)
        except (RedisError, OSError) as exc:
            log.warning("could not settle usage in Redis (%s); counters expire with their window", exc)

    async def close(self) -> None:
        await self._redis.aclose()


def _seconds(value: float) -> str:
    return f"{max(0.0, value):.3f}".rstrip("0").rstrip(".") + "s"


@dataclass
class Admission:
    """What one admitted request holds: counter keys and the amounts it reserved."""

    keys: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    reserved: list[int] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


class Limiter:
    """Admission control over a backend: ``admit`` reserves, ``release`` settles actual usage."""

    def __init__(self, backend: Backend, *, fail_open: bool = False) -> None:
        self.backend = backend
        self.fail_open = fail_open
        # (key id, model) -> counters; a key's limits never change (rotation makes a new key id)
        self._checks: dict[tuple[str, str], list[Limit]] = {}

    async def admit(
        self, key_id: str, limits: dict[str, Any], model: str, *, tokens: int = 0, cost_micro: int = 0
    ) -> Admission:
        """Reserve one request, ``tokens`` and ``cost_micro`` against every limit; 429 if any is full."""
        checks = self._checks.get((key_id, model))
        if checks is None:
            if len(self._checks) > 10_000:
                self._checks.clear()
            checks = self._checks[(key_id, model)] = limits_for(key_id, limits, model)
        if not checks:
            return Admission()
        now = self.backend.now()
        amounts = {"requests": 1, "tokens": tokens, "cost": cost_micro, "concurrency": 1}
        keys, ttls, resets, want, caps = [], [], [], [], []
        for c in checks:
            k, ttl, reset = window_key(c, now)
            keys.append(k)
            ttls.append(ttl)
            resets.append(reset)
            want.append(amounts[c.kind])
            caps.append(c.limit)
            if amounts[c.kind] > c.limit and c.kind in ("tokens", "cost"):
                # it could never be admitted, whatever the wait: a client mistake, not a 429
                scale = MICRO if c.kind == "cost" else 1
                raise InvalidInput(
                    f"this request may use up to {amounts[c.kind] / scale:g} {c.kind}, more than the "
                    f"key's whole {c.label} limit of {c.limit / scale:g}: lower max_tokens"
                )
        try:
            failed, values = await self.backend.reserve(keys, want, caps, ttls)
        except GatewayUnavailable:
            if not self.fail_open:
                raise
            log.warning("rate-limit backend down: admitting %s without limits (fail open)", key_id)
            return Admission()
        headers = self._headers(checks, values, resets)
        if failed >= 0:
            c = checks[failed]
            if c.window == "concurrent":
                headers["Retry-After"] = "1"
            elif math.isfinite(resets[failed]):
                headers["Retry-After"] = str(max(1, math.ceil(resets[failed])))
            if c.window in ("minute", "concurrent"):
                raise RateLimited(
                    f"rate limit reached for key {key_id}: {c.label} = {c.limit} {c.kind}; "
                    f"retry in {headers['Retry-After']} s",
                    headers,
                )
            spent = f"{c.limit / MICRO:g}" if c.kind == "cost" else str(c.limit)
            raise QuotaExceeded(
                f"quota exhausted for key {key_id}: {c.label} = {spent} "
                + (f"(resets in {headers['Retry-After']} s)" if "Retry-After" in headers else "(no reset)"),
                headers,
            )
        return Admission(keys, [c.kind for c in checks], want, headers)

    @staticmethod
    def _headers(checks: list[Limit], values: list[int], resets: list[float]) -> dict[str, str]:
        """OpenAI-style x-ratelimit-* headers from the per-minute request and token counters."""
        headers: dict[str, str] = {}
        for c, value, reset in zip(checks, values, resets, strict=True):
            if c.window != "minute" or c.name.split(":")[-1] not in ("rpm", "tpm"):
                continue
            if ":m:" in c.name:
                continue
            unit = c.kind
            headers[f"x-ratelimit-limit-{unit}"] = str(c.limit)
            headers[f"x-ratelimit-remaining-{unit}"] = str(max(0, c.limit - value))
            headers[f"x-ratelimit-reset-{unit}"] = _seconds(reset)
        return headers

    async def release(self, admission: Admission, *, tokens: int, cost_micro: int) -> None:
        """Settle: give back what was reserved but not used, and free the concurrency slot."""
        if not admission.keys:
            return
        actual = {"requests": 1, "tokens": tokens, "cost": cost_micro, "concurrency": 0}
        deltas = [
            min(0, actual[kind] - reserved)
            for kind, reserved in zip(admission.kinds, admission.reserved, strict=True)
        ]
        pairs = [(k, d) for k, d in zip(admission.keys, deltas, strict=True) if d != 0]
        if pairs:
            await self.backend.settle([k for k, _ in pairs], [d for _, d in pairs])
