"""The one thread a ``single_thread`` runtime (Whisper's CTranslate2, Bergamot) is loaded, called and
unloaded on.

A plain thread reading a ``queue.SimpleQueue`` that answers an asyncio future through
``call_soon_threadsafe``. ``ThreadPoolExecutor`` + ``run_in_executor`` did the same with a concurrent
``Future`` (its Condition and lock), the ``wrap_future`` callback chain and the pool's bookkeeping on
both threads: 0.35 ms per call from an idle event loop on 2 cores against 0.23 ms here (a 10 ms job,
the median of 400; the rest is waking the idle thread and then the loop), ~1 % of a served sentence.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class ModelThread:
    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        # A daemon thread, as a model call can outlive a server that stopped waiting for it.
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    @property
    def name(self) -> str:
        return self._thread.name

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(*args)`` on the thread now (call from the event loop); its future resolves on
        the loop. Cancelling the future does not stop a call that has started."""
        if self._closed:
            raise RuntimeError(f"model thread {self.name} is shut down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, args, loop, future))
        return future

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.submit(fn, *args)

    def shutdown(self) -> None:
        """Stop the thread once the calls already queued have run (it is not waited for)."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args, loop, future = job
            try:
                value, error = fn(*args), None
            except BaseException as exc:  # handed to the caller, as an executor would
                value, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, future, value, error)
            del job, fn, args, future, value, error  # drop references (inputs, results) while idle


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled: the caller gave up (a request timeout)
        return
    if error is None:
        future.set_result(value)
    else:
        future.set_exception(error)
