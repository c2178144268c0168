"""Batching correctness with a fake predict function (no model needed)."""

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest

from modelhost.dataplane.batching import Activity, Batcher
from modelhost.errors import InvalidInput, ModelNotReady


class FakeModel:
    """Doubles its input; rows containing -1 make the whole call fail, like a model rejecting a value."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay = delay
        self.lock = threading.Lock()

    def predict(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        x = inputs["x"]
        with self.lock:
            self.calls.append(len(x))
        if self.delay:
            import time

            time.sleep(self.delay)
        if (x == -1).any():
            raise ValueError("negative one is not allowed")
        return {"y": x * 2, "z": x.sum(axis=1)}


async def _submit_all(batcher: Batcher, rows: list[np.ndarray], outputs=("y",)) -> list:  # type: ignore[no-untyped-def]
    return await asyncio.gather(
        *(batcher.submit({"x": r}, list(outputs)) for r in rows), return_exceptions=True
    )


def test_rows_come_back_to_their_own_requests_in_order() -> None:
    model = FakeModel(delay=0.01)

    async def main() -> list:  # type: ignore[type-arg]
        batcher = Batcher(model.predict, max_batch_size=8, max_wait_ms=5)
        rows = [np.full((1 + i % 3, 2), float(i)) for i in range(20)]
        results = await _submit_all(batcher, rows)
        await batcher.close()
        return [(r, res) for r, res in zip(rows, results, strict=True)]

    pairs = asyncio.run(main())
    for row, res in pairs:
        np.testing.assert_array_equal(res["y"], row * 2)
        assert set(res) == {"y"}
    assert max(model.calls) > 1, "requests were batched together"
    assert all(c <= 8 for c in model.calls), "no batch exceeds max_batch_size rows"
    assert sum(model.calls) == sum(r.shape[0] for r, _ in pairs)


def test_one_bad_row_fails_only_its_request() -> None:
    model = FakeModel(delay=0.005)

    async def main() -> list:  # type: ignore[type-arg]
        batcher = Batcher(model.predict, max_batch_size=16, max_wait_ms=20)
        rows = [np.array([[float(i), 1.0]]) for i in range(10)]
        rows[4] = np.array([[-1.0, 1.0]])
        out = await _submit_all(batcher, rows)
        await batcher.close()
        return out

    results = asyncio.run(main())
    assert isinstance(results[4], ValueError)
    for i, res in enumerate(results):
        if i != 4:
            np.testing.assert_array_equal(res["y"], [[2.0 * i, 2.0]])


def test_union_of_outputs_and_mixed_shapes_are_grouped() -> None:
    model = FakeModel()

    async def main() -> list:  # type: ignore[type-arg]
        batcher = Batcher(model.predict, max_batch_size=32, max_wait_ms=20)
        a = batcher.submit({"x": np.ones((2, 3))}, ["y"])
        b = batcher.submit({"x": np.ones((1, 3))}, ["z"])
        c = batcher.submit({"x": np.ones((1, 5))}, ["y", "z"])  # other trailing shape: its own group
        out = await asyncio.gather(a, b, c)
        await batcher.close()
        return out

    a, b, c = asyncio.run(main())
    assert set(a) == {"y"} and a["y"].shape == (2, 3)
    assert set(b) == {"z"} and b["z"].tolist() == [3.0]
    assert c["y"].shape == (1, 5) and c["z"].tolist() == [5.0]


def test_batch_size_one_never_batches_and_large_requests_run_alone() -> None:
    model = FakeModel(delay=0.002)

    async def main() -> None:
        batcher = Batcher(model.predict, max_batch_size=4, max_wait_ms=10)
        await _submit_all(batcher, [np.ones((10, 2)), np.ones((1, 2)), np.ones((1, 2))])
        await batcher.close()

    asyncio.run(main())
    assert 10 in model.calls and all(c <= 4 for c in model.calls if c != 10)


def test_close_fails_queued_requests_with_503() -> None:
    release = threading.Event()

    def slow(inputs, outputs):  # type: ignore[no-untyped-def]
        release.wait(5)
        return {"y": inputs["x"]}

    async def main() -> list:  # type: ignore[type-arg]
        batcher = Batcher(slow, max_batch_size=1, max_wait_ms=0)
        tasks = [asyncio.create_task(batcher.submit({"x": np.ones((1, 1))}, ["y"])) for _ in range(3)]
        await asyncio.sleep(0.05)
        closing = asyncio.create_task(batcher.close(drain_timeout_s=0))
        await asyncio.sleep(0.05)
        release.set()
        await closing
        with pytest.raises(ModelNotReady):
            await batcher.submit({"x": np.ones((1, 1))}, ["y"])
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    assert "y" in results[0]  # the running batch finished
    assert all(isinstance(r, ModelNotReady) for r in results[1:])


def test_stats_and_hook_record_batches() -> None:
    seen: list[tuple[int, int]] = []
    model = FakeModel(delay=0.005)

    async def main() -> Batcher:
        batcher = Batcher(model.predict, max_batch_size=64, max_wait_ms=10,
                          on_batch=lambda rows, reqs, _q: seen.append((rows, reqs)))  # fmt: skip
        await _submit_all(batcher, [np.ones((1, 2))] * 12)
        await batcher.close()
        return batcher

    batcher = asyncio.run(main())
    assert batcher.stats.requests == 12 and batcher.stats.rows == 12
    assert sum(r for r, _ in seen) == 12 and batcher.stats.batches == len(seen) < 12


def test_modelhost_errors_pass_through() -> None:
    def bad(inputs, outputs):  # type: ignore[no-untyped-def]
        raise InvalidInput("nope")

    async def main() -> list:  # type: ignore[type-arg]
        batcher = Batcher(bad, max_batch_size=8, max_wait_ms=5)
        out = await _submit_all(batcher, [np.ones((1, 1))] * 3)
        await batcher.close()
        return out

    assert all(isinstance(r, InvalidInput) for r in asyncio.run(main()))


def test_a_request_alone_in_the_server_runs_on_the_event_loop_below_the_lone_limit() -> None:
    """A 3 ms model is no "fast" model (inline_below_s 100 µs), yet a request that has the server to
    itself runs it on the event loop (no thread hand-offs) when calls take under inline_lone_s; with
    another request in flight, or above the limit, calls go to threads."""
    import time as _time

    threads: list[int] = []

    def predict(inputs, outputs):  # type: ignore[no-untyped-def]
        threads.append(threading.get_ident())
        _time.sleep(0.003)
        return {"y": inputs["x"] + 1}

    async def main(active: int, lone_s: float) -> int:
        activity = Activity()
        activity.active = active  # this request, and (active > 1) others in flight
        batcher = Batcher(
            predict, max_batch_size=8, max_wait_ms=0, inline_below_s=1e-4, activity=activity,
            inline_lone_s=lone_s,
        )  # fmt: skip
        for i in range(4):
            out = await batcher.submit({"x": np.full((1, 1), float(i))}, ["y"])
            assert out["y"].tolist() == [[i + 1.0]]
        await batcher.close()
        return threading.get_ident()

    loop_thread = asyncio.run(main(active=1, lone_s=0.025))
    assert threads[0] != loop_thread  # the first call measures the model, in a thread
    assert all(t == loop_thread for t in threads[1:])  # then, alone, on the loop
    for active, lone_s in ((2, 0.025), (1, 0.002), (1, 0.0)):
        threads.clear()
        loop_thread = asyncio.run(main(active=active, lone_s=lone_s))
        assert all(t != loop_thread for t in threads), (active, lone_s)


def test_a_lone_request_stays_off_the_loop_when_its_rows_or_a_recent_slow_call_would_hold_it() -> None:
    """The lone limit applies to the request's rows at the worst recent per-row time: 3 ms a row
    fits 25 ms for 1 row, not for 10; one slow call among the recent ones keeps requests in threads."""
    import time as _time

    threads: list[int] = []
    slow = {"next": False}

    def predict(inputs, outputs):  # type: ignore[no-untyped-def]
        threads.append(threading.get_ident())
        _time.sleep(0.05 if slow.pop("next", False) else 0.003 * inputs["x"].shape[0])
        return {"y": inputs["x"]}

    async def main() -> tuple[int, list[bool]]:
        activity = Activity()
        activity.active = 1
        batcher = Batcher(
            predict, max_batch_size=64, max_wait_ms=0, inline_below_s=1e-4, activity=activity,
            inline_lone_s=0.025,
        )  # fmt: skip
        loop_thread = threading.get_ident()
        inline = []
        for rows in (1, 1, 10, 1):  # measured; inline; 10 rows: 30 ms, too long; 1 row again: inline
            threads.clear()
            await batcher.submit({"x": np.zeros((rows, 1))}, ["y"])
            inline.append(threads[-1] == loop_thread)
        slow["next"] = True  # a call that surprises: 50 ms (it runs inline, as the model looked fast)
        await batcher.submit({"x": np.zeros((1, 1))}, ["y"])
        threads.clear()
        await batcher.submit({"x": np.zeros((1, 1))}, ["y"])
        inline.append(threads[-1] == loop_thread)
        await batcher.close()
        return loop_thread, inline

    _, inline = asyncio.run(main())
    assert inline == [False, True, False, True, False]


def test_fast_models_run_on_the_event_loop_and_slow_ones_in_threads() -> None:
    threads: list[int] = []

    def predict(inputs, outputs):  # type: ignore[no-untyped-def]
        threads.append(threading.get_ident())
        return {"y": inputs["x"] * 2}

    async def main(inline_below_s: float) -> int:
        batcher = Batcher(predict, max_batch_size=8, max_wait_ms=0, inline_below_s=inline_below_s)
        for i in range(5):
            out = await batcher.submit({"x": np.full((1, 1), float(i))}, ["y"])
            assert out["y"].tolist() == [[2.0 * i]]
        await batcher.close()
        return threading.get_ident()

    loop_thread = asyncio.run(main(inline_below_s=1.0))
    assert threads[0] != loop_thread  # the first call measures, in a thread
    assert all(t == loop_thread for t in threads[1:])  # then inline: no hand-off
    threads.clear()
    loop_thread = asyncio.run(main(inline_below_s=0.0))
    assert all(t != loop_thread for t in threads)


def test_occasional_slow_calls_do_not_send_a_fast_model_to_threads() -> None:
    """Preemption on a busy machine makes some calls of a fast model slow; the inline decision uses the
    least recent call time, so a 1-in-3 outlier does not bring back the thread hand-off."""
    import time as _time

    threads: list[int] = []

    def predict(inputs, outputs):  # type: ignore[no-untyped-def]
        threads.append(threading.get_ident())
        if len(threads) % 3 == 0:
            _time.sleep(0.02)  # an outlier, 20x the inline threshold
        return {"y": inputs["x"] * 2}

    async def main() -> int:
        batcher = Batcher(predict, max_batch_size=8, max_wait_ms=0, inline_below_s=0.001)
        for i in range(12):
            assert (await batcher.submit({"x": np.full((1, 1), float(i))}, ["y"]))["y"].tolist() == [
                [2.0 * i]
            ]
        await batcher.close()
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert all(t == loop_thread for t in threads[1:])


def test_refused_calls_do_not_make_a_slow_model_look_fast() -> None:
    """A call that fails at once (bad input) measures nothing about the model: after it, a slow model
    still runs in a thread, not on the event loop."""
    import time as _time

    threads: list[int] = []

    def predict(inputs, outputs):  # type: ignore[no-untyped-def]
        threads.append(threading.get_ident())
        if inputs["x"][0, 0] < 0:
            raise InvalidInput("negative")
        _time.sleep(0.01)  # 10x the inline threshold
        return {"y": inputs["x"] * 2}

    async def main() -> int:
        batcher = Batcher(predict, max_batch_size=8, max_wait_ms=0, inline_below_s=0.001)
        await batcher.submit({"x": np.ones((1, 1))}, ["y"])
        with pytest.raises(InvalidInput):
            await batcher.submit({"x": -np.ones((1, 1))}, ["y"])
        await batcher.submit({"x": np.ones((1, 1))}, ["y"])
        await batcher.close()
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert len(threads) == 3 and all(t != loop_thread for t in threads)


def test_settle_collects_requests_arriving_over_several_loop_turns() -> None:
    """Clients answered together come back a few loop turns apart; with max_wait 0 the batch keeps
    collecting while they arrive (settle_ticks), instead of running the first one alone."""

    async def run(settle: int) -> list[int]:
        model = FakeModel()
        batcher = Batcher(model.predict, max_batch_size=64, max_wait_ms=0, settle_ticks=settle)

        async def client(i: int) -> np.ndarray:
            for _ in range(i):  # client i arrives i loop turns after the first
                await asyncio.sleep(0)
            return (await batcher.submit({"x": np.array([[float(i)]])}, ["y"]))["y"]

        results = await asyncio.gather(*(client(i) for i in range(8)))
        await batcher.close()
        assert [r.tolist() for r in results] == [[[2.0 * i]] for i in range(8)]
        return model.calls

    assert asyncio.run(run(32)) == [8]
    assert len(asyncio.run(run(0))) > 1  # closed at the first empty queue: several small batches


def test_settle_stops_when_nothing_arrives() -> None:
    async def run() -> tuple[np.ndarray, float]:
        model = FakeModel()
        # ten million empty loop turns would take about a minute; two of them end the settling
        batcher = Batcher(model.predict, max_batch_size=64, max_wait_ms=0, settle_ticks=10_000_000)
        loop = asyncio.get_running_loop()
        started = loop.time()
        out = await batcher.submit({"x": np.array([[1.0]])}, ["y"])
        took = loop.time() - started
        await batcher.close()
        return out["y"], took

    y, took = asyncio.run(run())
    assert y.tolist() == [[2.0]] and took < 5.0


def _closed_loop(balance: bool, clients: int = 16, rounds: int = 12) -> tuple[list[int], Batcher]:
    """CLIENTS clients each sending ROUNDS single-row requests back to back, against a model that
    takes 10 ms per call in a thread; the row counts of the model's calls, in order."""
    model = FakeModel(delay=0.01)
    batcher = Batcher(model.predict, max_batch_size=clients, max_wait_ms=0, balance=balance)

    async def client(i: int) -> None:
        for j in range(rounds):
            x = np.array([[float(i), float(j)]])
            out = await batcher.submit({"x": x}, ["y"])
            assert out["y"].tolist() == (x * 2).tolist()  # each request gets its own row back
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(client(i) for i in range(clients)))
        await batcher.close()

    asyncio.run(main())
    return model.calls, batcher


def test_balanced_batches_keep_closed_loop_clients_out_of_lone_calls() -> None:
    calls, batcher = _closed_loop(balance=True)
    assert sum(calls) == 16 * 12 and batcher.stats.busy_seconds >= 0.01 * len(calls)
    assert 0 <= batcher.stats.busy_cpu_seconds < batcher.stats.busy_seconds  # the fake model sleeps
    steady = calls[4:-4]  # after the start, before the clients run out
    assert steady and all(4 <= n <= 12 for n in steady), calls
    unbalanced, _ = _closed_loop(balance=False)  # without: lone calls alternate with batches of 15
    assert sum(unbalanced) == 16 * 12 and unbalanced[4:-4].count(1) >= 3, unbalanced


def test_balancing_leaves_sustained_load_and_waits_alone() -> None:
    b = Batcher(FakeModel().predict, max_batch_size=64, max_wait_ms=0)
    b._avg_s = 1.0  # a model run in a thread
    b.stats.last_batch_rows = 1
    assert b._balanced_limit(63) == 32  # 63 waiting, 1 coming back: the larger half of 64
    b.stats.last_batch_rows = 64
    assert b._balanced_limit(63) == 64  # the queue no longer than what comes back: take it all
    assert b._balanced_limit(3) == 64  # too few to split
    waits = Batcher(FakeModel().predict, max_batch_size=64, max_wait_ms=2)
    waits._avg_s, waits.stats.last_batch_rows = 1.0, 1
    assert waits._balanced_limit(63) == 64  # a configured wait decides batch sizes itself
    pool = Batcher(FakeModel().predict, max_batch_size=64, max_wait_ms=0, parallel=2)
    pool._avg_s, pool.stats.last_batch_rows = 1.0, 1
    assert pool._balanced_limit(63) == 64  # several slots already overlap


def test_a_fast_model_timed_slow_in_threads_is_probed_back_inline() -> None:
    """Timings taken in a thread include the wait for the GIL; a fast model must not stay threaded
    because of them: every PROBE_EVERY-th threaded call of a cheap-looking model runs inline."""
    import time as _time

    from modelhost.dataplane import batching

    threads: list[int] = []
    loop_thread = threading.get_ident()  # asyncio.run runs the loop on this thread

    def predict(inputs, outputs):  # type: ignore[no-untyped-def]
        threads.append(threading.get_ident())
        if threading.get_ident() != loop_thread:
            _time.sleep(0.005)  # in a thread: as if waiting 5 ms for the GIL on return
        return {"y": inputs["x"] * 2}

    async def main() -> int:
        batcher = Batcher(predict, max_batch_size=8, max_wait_ms=0, inline_below_s=0.001)
        for i in range(batching.PROBE_EVERY + 4):
            assert (await batcher.submit({"x": np.full((1, 1), float(i))}, ["y"]))["y"].tolist() == [
                [2.0 * i]
            ]
        await batcher.close()
        return threading.get_ident()

    assert asyncio.run(main()) == loop_thread
    first_inline = next(i for i, t in enumerate(threads) if t == loop_thread)
    assert first_inline == batching.PROBE_EVERY - 1  # threaded until the probe...
    assert all(t == loop_thread for t in threads[first_inline:])  # ...which measured it fast: inline since
