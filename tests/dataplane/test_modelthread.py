"""ModelThread: every call on one thread, results and errors back on the event loop, a cancelled
caller does not break the thread, and shutdown lets queued calls finish."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from modelhost.dataplane.modelthread import ModelThread


def test_calls_run_in_order_on_one_named_thread_and_errors_reach_the_caller() -> None:
    thread = ModelThread("modelhost-test-v1")
    seen: list[tuple[str, int]] = []

    def work(i: int) -> int:
        seen.append((threading.current_thread().name, i))
        return i * 2

    def fail() -> None:
        raise ValueError("bad row")

    async def main() -> list[int]:
        results = await asyncio.gather(*(thread.run(work, i) for i in range(20)))
        with pytest.raises(ValueError, match="bad row"):
            await thread.run(fail)
        assert await thread.submit(work, 99) == 198  # submit: queued at once, awaited later
        return list(results)

    try:
        assert asyncio.run(main()) == [i * 2 for i in range(20)]
    finally:
        thread.shutdown()
    assert [i for _, i in seen] == [*range(20), 99]
    assert {name for name, _ in seen} == {"modelhost-test-v1"}


def test_a_caller_that_gives_up_leaves_the_thread_working() -> None:
    thread = ModelThread("modelhost-test-v2")

    async def main() -> int:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await thread.run(time.sleep, 0.1)  # the call goes on; its late answer is dropped
        return await thread.run(lambda: 7)

    try:
        assert asyncio.run(main()) == 7
    finally:
        thread.shutdown()


def test_shutdown_runs_what_was_queued_then_refuses_new_calls() -> None:
    thread = ModelThread("modelhost-test-v3")
    done: list[int] = []

    async def main() -> None:
        futures = [thread.submit(lambda i=i: done.append(i) or i) for i in range(3)]
        thread.shutdown()
        assert await asyncio.gather(*futures) == [0, 1, 2]
        with pytest.raises(RuntimeError, match="shut down"):
            thread.submit(lambda: None)

    asyncio.run(main())
    thread._thread.join(timeout=5)
    assert done == [0, 1, 2] and not thread._thread.is_alive()
