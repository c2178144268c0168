"""Limits, quotas and budgets: atomic reservation and settlement, in memory and in a real Redis."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from modelhost.config import Settings
from modelhost.errors import GatewayUnavailable, InvalidInput, QuotaExceeded, RateLimited
from modelhost.gateway.keys import ApiKey
from modelhost.gateway.limits import MemoryBackend, RedisBackend, limits_for, window_key
from modelhost.gateway.service import Gateway
from modelhost.registry import Registry


class FakeClock:
    def __init__(self, now: float = 1_764_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def backend_factory(request: pytest.FixtureRequest) -> Iterator[Callable[[], object]]:
    """Makes backends of one kind; Redis ones share one real server (flushed per test)."""
    if request.param == "memory":
        shared = MemoryBackend()
        yield lambda: shared
        return
    url: str = request.getfixturevalue("redis_url")
    import redis

    redis.Redis.from_url(url).flushdb()
    yield lambda: RedisBackend(url)


def _key(**limits: object) -> ApiKey:
    return ApiKey(key_id="k1", name="t", scopes=("infer",), limits=dict(limits))


def _race(n: int, fn: Callable[[], object]) -> list[object]:
    """Run ``fn`` in ``n`` threads released at the same instant; returns results or exceptions."""
    barrier = threading.Barrier(n)

    def run() -> object:
        barrier.wait()
        try:
            return fn()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: run(), range(n)))


def test_64_way_race_against_a_10_request_quota_admits_exactly_10(
    settings: Settings, registry: Registry, backend_factory: Callable[[], object]
) -> None:
    key = _key(requests_per_day=10)

    def one() -> object:
        # each thread is its own event loop and, for Redis, its own connection: like 64 replicas
        gateway = Gateway(registry, settings, backend_factory())  # type: ignore[arg-type]

        async def go() -> object:
            try:
                usage = await gateway.admit(key, "iris")
                await usage.settle()
                return usage
            finally:
                await gateway.close()

        return asyncio.run(go())

    results = _race(64, one)
    admitted = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert len(admitted) == 10 and len(refused) == 54, [r for r in results if isinstance(r, Exception)][:3]
    assert all(r.headers["Retry-After"].isdigit() for r in refused)  # type: ignore[attr-defined]


def test_token_budget_is_never_exceeded_under_concurrency(
    settings: Settings, registry: Registry, backend_factory: Callable[[], object]
) -> None:
    """64 LLM-style requests reserve max_tokens=100 against 1,000 tokens/day; the ones admitted use
    between 1 and 100 tokens. Reserved + settled usage can never pass the budget."""
    key = _key(tokens_per_day=1000)
    gateway = Gateway(registry, settings, backend_factory())  # type: ignore[arg-type]
    used: list[int] = []

    async def main() -> list[object]:
        async def one(i: int) -> object:
            try:
                usage = await gateway.admit(key, "llm", input_tokens=0, max_tokens=100)
            except QuotaExceeded as exc:
                return exc
            await asyncio.sleep(0.001 * (i % 5))
            tokens = 1 + (i * 37) % 100
            used.append(tokens)
            await usage.settle(output_tokens=tokens)
            return usage

        try:
            return await asyncio.gather(*(one(i) for i in range(64)))
        finally:
            await gateway.close()

    results = asyncio.run(main())
    assert 0 < sum(used) <= 1000
    assert any(isinstance(r, QuotaExceeded) for r in results)


def test_settlement_gives_back_unused_tokens() -> None:
    backend = MemoryBackend(FakeClock())
    from modelhost.gateway.limits import Limiter

    limiter = Limiter(backend)
    limits = {"tpm": 1000}
    adm = asyncio.run(limiter.admit("k", limits, "llm", tokens=800))
    with pytest.raises(RateLimited) as exc_info:
        asyncio.run(limiter.admit("k", limits, "llm", tokens=300))
    assert exc_info.value.headers["x-ratelimit-remaining-tokens"] == "200"
    asyncio.run(limiter.release(adm, tokens=100, cost_micro=0))  # used 100 of the 800 reserved
    adm2 = asyncio.run(limiter.admit("k", limits, "llm", tokens=300))
    assert adm2.headers["x-ratelimit-remaining-tokens"] == "600"
    with pytest.raises(InvalidInput, match="lower max_tokens"):
        asyncio.run(limiter.admit("k", limits, "llm", tokens=5000))


def test_rpm_window_resets_with_the_clock_and_sets_headers(settings: Settings, registry: Registry) -> None:
    clock = FakeClock(1_764_000_000.0)  # a multiple of 60: the start of a minute
    gateway = Gateway(registry, settings, MemoryBackend(clock))
    key = _key(rpm=2)

    async def main() -> None:
        first = await gateway.admit(key, "iris")
        assert first.headers["x-ratelimit-limit-requests"] == "2"
        assert first.headers["x-ratelimit-remaining-requests"] == "1"
        assert first.headers["x-ratelimit-reset-requests"] == "60s"
        await gateway.admit(key, "iris")
        clock.now += 20
        with pytest.raises(RateLimited) as exc_info:
            await gateway.admit(key, "iris")
        assert exc_info.value.headers["Retry-After"] == "40"
        assert exc_info.value.status_code == 429 and "rpm" in exc_info.value.message
        clock.now += 40
        assert (await gateway.admit(key, "iris")).headers["x-ratelimit-remaining-requests"] == "1"

    asyncio.run(main())


def test_concurrency_limit_frees_slots_on_settle(settings: Settings, registry: Registry) -> None:
    gateway = Gateway(registry, settings, MemoryBackend())
    key = _key(concurrency=2)

    async def main() -> None:
        a = await gateway.admit(key, "iris")
        await gateway.admit(key, "iris")
        with pytest.raises(RateLimited, match="concurrency") as exc_info:
            await gateway.admit(key, "iris")
        assert exc_info.value.headers["Retry-After"] == "1"
        await a.settle(error=True)
        await a.settle()  # idempotent: frees the slot once
        await gateway.admit(key, "iris")
        with pytest.raises(RateLimited):
            await gateway.admit(key, "iris")

    asyncio.run(main())


def test_cost_budget_with_prices_and_per_model_limits(settings: Settings, registry: Registry) -> None:
    s = settings.model_copy(update={"prices": {"iris": {"request": 0.25}, "iris/2": {"request": 1.0}}})
    gateway = Gateway(registry, s, MemoryBackend())
    key = _key(budget_total=1.0, models={"digits": {"requests_per_day": 1}})

    async def main() -> None:
        for _ in range(4):
            await (await gateway.admit(key, "iris@production")).settle()
        with pytest.raises(QuotaExceeded, match="budget_total"):
            await gateway.admit(key, "iris")
        await gateway.admit(key, "digits")
        with pytest.raises(QuotaExceeded, match="requests_per_day"):
            await gateway.admit(key, "digits")

    asyncio.run(main())
    gateway.meter.flush()
    rows = {(r.model, r.version): r for r in gateway.meter.report()}
    assert rows[("iris", "")].requests == 4 and rows[("iris", "")].cost == pytest.approx(1.0)


def test_month_window_and_reset() -> None:
    (limit,) = limits_for("k", {"requests_per_month": 5}, "iris")
    # 2026-11-30T23:59:00Z: the window resets at 2026-12-01T00:00:00Z, in 60 s
    key, ttl, reset = window_key(limit, 1_796_083_140.0)
    assert key.endswith(":202611") and ttl > 0 and reset == pytest.approx(60.0)


def test_redis_down_fails_closed_or_open(settings: Settings, registry: Registry) -> None:
    dead = "redis://127.0.0.1:1/0"
    gateway = Gateway(registry, settings, RedisBackend(dead))

    async def admit(gw: Gateway) -> dict[str, str]:
        try:
            return (await gw.admit(_key(rpm=5), "iris")).headers
        finally:
            await gw.close()

    with pytest.raises(GatewayUnavailable, match="unreachable") as exc_info:
        asyncio.run(admit(gateway))
    assert exc_info.value.status_code == 503
    open_gw = Gateway(registry, settings.model_copy(update={"limits_fail_open": True}), RedisBackend(dead))
    assert asyncio.run(admit(open_gw)) == {}


def test_redis_windows_follow_the_redis_clock(redis_url: str) -> None:
    """Clock skew: a replica whose clock is an hour off still counts in Redis's current window."""
    import time as real_time

    backend = RedisBackend(redis_url)

    async def main() -> float:
        try:
            await backend.reserve(["mh:{skew}:probe"], [1], [10], [10])
            return backend.now()
        finally:
            await backend.close()

    skewed = real_time.time
    try:
        real_time.time = lambda: skewed() + 3600  # type: ignore[assignment]
        seen = asyncio.run(main())
    finally:
        real_time.time = skewed  # type: ignore[assignment]
    assert abs(seen - real_time.time()) < 5
