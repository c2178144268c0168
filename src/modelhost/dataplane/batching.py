"""Adaptive (dynamic) batching, per loaded model.

Requests queue; a batch closes when it holds ``max_batch_size`` rows or ``max_wait_ms`` has passed since
its first request (0 = take whatever queued while the model was busy, plus what is still arriving:
up to ``settle_ticks`` event-loop turns, ending after two turns that bring nothing; with one model
slot, balanced so the model never idles while a whole batch is answered: ``_balanced_limit``). Up to
``parallel`` batches run at once (one per worker process). Rows are scattered back to their requests,
and a batch that fails is re-run request by request, so one bad row fails only its own request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import anyio
import numpy as np

from modelhost.dataplane.modelthread import ModelThread
from modelhost.errors import ModelhostError, ModelNotReady
from modelhost.runtimes.base import PARAMETERS_INPUT

log = logging.getLogger(__name__)

# A threaded model that may be fast after all is timed inline once every PROBE_EVERY threaded calls,
# if its threaded timings are under PROBE_BELOW x the inline threshold (a probe blocks the loop that long).
PROBE_EVERY = 32
PROBE_BELOW = 20
# Event-loop turns a lone request waits before running inline (see ``Batcher._still_lone``): a request
# read in one turn starts its task the next, and counts itself in flight when that runs.
LONE_YIELDS = 3

PredictFn = Callable[[dict[str, np.ndarray], Sequence[str]], dict[str, np.ndarray]]


@dataclass
class _Item:
    inputs: dict[str, np.ndarray]
    outputs: tuple[str, ...]
    rows: int
    future: asyncio.Future[dict[str, np.ndarray]]
    call: PredictFn | None = None
    key: Hashable = None
    enqueued: float = field(default_factory=time.perf_counter)

    def group_key(self) -> tuple[object, ...]:
        """Requests batch together only when every input has the same dtype and trailing shape, and
        the same request parameters when the model takes them, and they ask for the same call
        (``key``: e.g. a task route's language pair)."""
        key = (self.key, *((n, a.dtype.str, a.shape[1:]) for n, a in sorted(self.inputs.items())))
        params = self.inputs.get(PARAMETERS_INPUT)
        return key if params is None or not params.size else (*key, str(params.reshape(-1)[0]))


def _rows(inputs: dict[str, np.ndarray]) -> int:
    first = next(iter(inputs.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


class Activity:
    """Requests in flight in this server process (HTTP and gRPC), counted where they enter, so a
    batcher can tell a request that has the server to itself (see ``Batcher`` ``inline_lone_s``)."""

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active = 0

    def __enter__(self) -> None:
        self.active += 1

    def __exit__(self, *_: object) -> None:
        self.active -= 1


@dataclass
class BatchStats:
    batches: int = 0
    rows: int = 0
    requests: int = 0
    queue_seconds: float = 0.0
    last_batch_rows: int = 0
    isolated_failures: int = 0
    busy_seconds: float = 0.0  # time spent in the model's predict (utilisation = its growth / wall time)
    busy_cpu_seconds: float = 0.0  # CPU time of the calling thread meanwhile (< busy_seconds: CPU-starved)


class Batcher:
    def __init__(
        self,
        predict: PredictFn,
        *,
        max_batch_size: int,
        max_wait_ms: float,
        parallel: int = 1,
        on_batch: Callable[[int, int, float], None] | None = None,
        inline_below_s: float = 0.0,
        settle_ticks: int = 0,
        executor: ModelThread | None = None,
        balance: bool = True,
        activity: Activity | None = None,
        inline_lone_s: float = 0.0,
    ) -> None:
        self.predict = predict
        # A model confined to one thread (``Runtime.single_thread``) runs its batches on that thread.
        self.executor = executor
        # Closed-loop clients answered by one batch come back together, but not in the same loop turn
        # (each is read, parsed and admitted first): closing at the first empty queue would run them as
        # many small batches. A few more turns while they keep arriving cost microseconds each.
        self.settle_ticks = max(0, settle_ticks)
        self._arrivals = 0
        # A model whose calls take less than ``inline_below_s`` runs on the event loop: for such models a
        # thread hand-off costs more than the prediction itself. The cost is the least of the last
        # calls, not their mean: on a busy machine preemption inflates some calls' wall time, which a
        # mean would take for model cost and send a 30 µs model through a thread.
        self.inline_below_s = inline_below_s
        # A request alone in the whole server (``activity``) also runs on the event loop when the model's
        # calls take less than ``inline_lone_s``: two thread hand-offs, each a wake-up of an idle core,
        # cost ~0.4 ms of a 10 ms image request on 2 cores. A request arriving meanwhile is read at
        # most that long later, and from then on the server is not idle: calls go to threads again.
        self.activity = activity
        self.inline_lone_s = inline_lone_s
        self._recent: deque[float] = deque(maxlen=16)
        # Seconds per row of the same calls: a lone request runs inline only if its rows at the worst
        # recent rate fit under ``inline_lone_s`` (a 50-image request must not hold the loop 50x longer).
        self._per_row: deque[float] = deque(maxlen=16)
        self._threaded = 0  # calls sent to a thread; every PROBE_EVERY-th may run inline (``_inline``)
        self._avg_s = float("inf")  # the model's cost per call as used for the decision (see above)
        self.max_batch_size = max(1, max_batch_size)
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.stats = BatchStats()
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._slots = asyncio.Semaphore(max(1, parallel))
        self.balance = balance and parallel <= 1  # see ``_balanced_limit``
        self._running: set[asyncio.Task[None]] = set()
        self._direct = 0  # requests running through the idle fast path (see ``submit``)
        self._collecting = 0  # requests the loop took from the queue and has not started yet
        self._loop_task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    async def submit(
        self,
        inputs: dict[str, np.ndarray],
        outputs: Sequence[str],
        *,
        call: PredictFn | None = None,
        key: Hashable = None,
    ) -> dict[str, np.ndarray]:
        """Queue one request; its rows run in a batch with other requests of the same ``key``.
        ``call`` replaces the model's predict for this request (requests sharing a ``key`` must pass
        the same call): task routes use it for options a tensor does not carry, such as a language."""
        if self._closed:
            raise ModelNotReady("the model is being unloaded")
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._loop(), name="modelhost-batcher")
        rows = _rows(inputs)
        if (
            self._idle()
            and self.executor is None
            and (self._avg_s < self.inline_below_s or (self._lone(rows) and await self._still_lone(rows)))
        ):
            # Nothing queued or running and the model is fast (or the request is alone in the server):
            # answer now, skipping queue, task, future and thread.
            self.stats.batches += 1
            self.stats.rows += int(rows)
            self.stats.requests += 1
            self.stats.last_batch_rows = int(rows)
            if self._on_batch is not None:
                self._on_batch(int(rows), 1, 0.0)
            result = self._timed(inputs, list(outputs), call)
            return {o: result[o] for o in outputs}
        if self.max_wait == 0 and not self.settle_ticks and self._queue.empty() and not self._slots.locked():
            # A free slot and nothing waiting: with no wait (nor settling) configured this request
            # would be a batch of one anyway; run it here, skipping the queue, the loop's wake-up and a task. Requests
            # arriving meanwhile queue and are batched when the slot frees.
            return await self._run_now(inputs, list(outputs), int(rows), call)
        future = asyncio.get_running_loop().create_future()
        item = _Item(inputs, tuple(outputs), int(rows), future, call, key)
        self._arrivals += 1
        self._queue.put_nowait(item)
        return await item.future

    def _lone(self, rows: int) -> bool:
        """Whether this request is the only one in the server and its model, at the worst per-row
        rate of its recent calls (not the least, as ``inline_below_s`` uses), takes under
        ``inline_lone_s`` for its rows: a model whose calls vary widely never blocks the loop long."""
        activity = self.activity
        return (
            activity is not None
            and activity.active <= 1
            and bool(self._per_row)
            and max(self._per_row) * max(1, rows) < self.inline_lone_s
        )

    async def _still_lone(self, rows: int) -> bool:
        """Whether the request is still alone after ``LONE_YIELDS`` event-loop turns. Requests the loop
        has read but not yet started (say, the fifteen that arrived while an inline call held the loop)
        count only once their tasks run; without these turns each would find itself "alone" in turn
        and the whole burst would run one by one on the loop (16 clients: 0.7x the throughput)."""
        for _ in range(LONE_YIELDS):
            await asyncio.sleep(0)
            if not (self._idle() and self._lone(rows)):
                return False
        return True

    def _idle(self) -> bool:
        return self._queue.empty() and not self._running and not self._direct and not self._collecting

    async def _run_now(
        self, inputs: dict[str, np.ndarray], outputs: list[str], rows: int, call: PredictFn | None
    ) -> dict[str, np.ndarray]:
        await self._slots.acquire()  # free (checked by the caller): returns without yielding
        self._direct += 1
        try:
            result = await self._call(inputs, outputs, call)
        finally:
            self._direct -= 1
            self._slots.release()
            self.stats.batches += 1
            self.stats.rows += rows
            self.stats.requests += 1
            self.stats.last_batch_rows = rows
            if self._on_batch is not None:
                self._on_batch(rows, 1, 0.0)
        return {o: result[o] for o in outputs}

    def _timed(
        self, inputs: dict[str, np.ndarray], outputs: list[str], call: PredictFn | None = None
    ) -> dict[str, np.ndarray]:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            result = (call or self.predict)(inputs, outputs)
        finally:
            took = time.perf_counter() - started
            self.stats.busy_seconds += took
            self.stats.busy_cpu_seconds += time.thread_time() - cpu
        # Only successful calls count: a call refused at once (bad input) says nothing about the model's
        # cost, and would make a slow model look fast enough to block the event loop.
        self._recent.append(took)
        self._avg_s = min(self._recent)
        self._per_row.append(took / max(1, _rows(inputs)))
        return result

    def _balanced_limit(self, waiting: int) -> int:
        """Rows the next batch may take. With no wait and one model slot, a batch taking every queued
        row leaves the model idle while its requests are answered and sent again, and the first to
        come back then runs alone: busy clients settle into alternating batches of 1 and N-1, the
        model idle between them. So when more rows wait than the batch just finished had (the rows
        about to come back), the batch takes only the larger half of both: the rest runs next, while
        this half is answered, and batches even out into two that alternate with the model kept busy.
        Under sustained load (the last batch as large as the queue) it takes everything, as before."""
        if not self.balance or self.max_wait > 0 or self.settle_ticks or waiting < 4:
            return self.max_batch_size
        if self.executor is None and self._avg_s < self.inline_below_s:
            return self.max_batch_size  # predicted on the event loop: nothing would overlap anyway
        half = -(-(waiting + self.stats.last_batch_rows) // 2)
        return max(1, min(self.max_batch_size, half))

    def _inline(self) -> bool:
        """Whether the next call runs on the event loop. A call timed in a thread includes the wait
        for the GIL when it returns (up to the interpreter's switch interval while the loop is busy),
        so once a fast model went to threads (its first calls always do) its timings could keep it
        there. Every ``PROBE_EVERY``-th threaded call of a model that looks cheap enough to try
        (under ``PROBE_BELOW`` × the threshold) runs inline, where the timing is the model's own."""
        if self.executor is not None:
            return False
        if self._avg_s < self.inline_below_s:
            return True
        self._threaded += 1
        return self._threaded % PROBE_EVERY == 0 and self._avg_s < PROBE_BELOW * self.inline_below_s

    async def _call(
        self, inputs: dict[str, np.ndarray], outputs: list[str], call: PredictFn | None
    ) -> dict[str, np.ndarray]:
        if self.executor is not None:
            return await self.executor.run(self._timed, inputs, outputs, call)
        if self._inline():
            return self._timed(inputs, outputs, call)
        return await anyio.to_thread.run_sync(self._timed, inputs, outputs, call)

    async def _loop(self) -> None:
        while True:
            first = await self._queue.get()
            self._collecting = 1  # not idle: ``close`` must not fail it while it waits for a slot
            try:
                await self._slots.acquire()
            except BaseException:
                self._collecting = 0
                self._requeue_front(first)
                raise
            try:
                batch = [first]
                rows = batch[0].rows
                deadline = batch[0].enqueued + self.max_wait
                settle = self.settle_ticks if self.max_wait == 0 else 0
                seen, quiet = self._arrivals, 0
                limit = self._balanced_limit(rows + self._queue.qsize())
                while rows < limit:
                    if not self._queue.empty():
                        item = self._queue.get_nowait()
                    else:
                        remaining = deadline - time.perf_counter()
                        if remaining <= 0:
                            if settle <= 0 or quiet >= 2:
                                break
                            quiet = quiet + 1 if self._arrivals == seen else 0
                            seen, settle = self._arrivals, settle - 1
                            await asyncio.sleep(0)
                            continue
                        # Poll rather than wait_for(queue.get()): a get cancelled by a timeout can
                        # lose the item it was handed on some Python versions.
                        await asyncio.sleep(min(remaining, 0.0005))
                        continue
                    if rows + item.rows > limit:
                        # does not fit: it opens the next batch (the queue is FIFO, so put it first)
                        self._requeue_front(item)
                        break
                    batch.append(item)
                    rows += item.rows
            except BaseException:
                self._collecting = 0
                self._slots.release()
                raise
            task = asyncio.create_task(self._run(batch, self._start(batch)))
            self._running.add(task)
            self._collecting = 0
            task.add_done_callback(self._running.discard)

    def _requeue_front(self, item: _Item) -> None:
        rest = [item]
        while not self._queue.empty():
            rest.append(self._queue.get_nowait())
        for it in rest:
            self._queue.put_nowait(it)

    def _start(self, batch: list[_Item]) -> asyncio.Future[dict[str, np.ndarray]] | None:
        """Hand a batch of one group to the model thread at once, from the collecting loop: a task
        would start it only after every callback already queued on the event loop (e.g. the previous
        batch's requests being answered), leaving the model idle meanwhile. None when it must go
        through ``_run_group`` (several groups, one request, or a model run on the event loop)."""
        if len(batch) < 2 or (self.executor is None and self._avg_s < PROBE_BELOW * self.inline_below_s):
            return None  # (possibly) predicted on the event loop: ``_run_group`` decides
        key = batch[0].group_key()
        if any(item.group_key() != key for item in batch[1:]):
            return None
        names = list(batch[0].inputs)
        inputs = {n: np.concatenate([i.inputs[n] for i in batch], axis=0) for n in names}
        outputs = list(dict.fromkeys(o for i in batch for o in i.outputs))
        if self.executor is not None:
            return self.executor.submit(self._timed, inputs, outputs, batch[0].call)
        return asyncio.get_running_loop().run_in_executor(None, self._timed, inputs, outputs, batch[0].call)

    async def _run(
        self, batch: list[_Item], started_call: asyncio.Future[dict[str, np.ndarray]] | None
    ) -> None:
        released = False
        try:
            started = time.perf_counter()
            if started_call is not None:
                try:
                    result = await started_call
                except Exception:
                    # One bad row must not fail the others: run each request alone to isolate it
                    # (holding the slot, so no more calls run at once than ``parallel``).
                    self.stats.isolated_failures += 1
                    for item in batch:
                        await self._run_one(item)
                else:
                    # Free the slot before answering: the next batch starts while these are answered.
                    self._slots.release()
                    released = True
                    self._scatter(batch, result)
            else:
                groups: dict[tuple[object, ...], list[_Item]] = {}
                for item in batch:
                    if not item.future.cancelled():
                        groups.setdefault(item.group_key(), []).append(item)
                for items in groups.values():
                    await self._run_group(items)
            rows = sum(i.rows for i in batch)
            queued = sum(started - i.enqueued for i in batch)
            self.stats.batches += 1
            self.stats.rows += rows
            self.stats.requests += len(batch)
            self.stats.queue_seconds += queued
            self.stats.last_batch_rows = rows
            if self._on_batch is not None:
                self._on_batch(rows, len(batch), queued / len(batch))
        finally:
            if not released:
                self._slots.release()

    async def _run_group(self, items: list[_Item]) -> None:
        if len(items) == 1:
            await self._run_one(items[0])
            return
        names = list(items[0].inputs)
        inputs = {n: np.concatenate([i.inputs[n] for i in items], axis=0) for n in names}
        outputs = list(dict.fromkeys(o for i in items for o in i.outputs))
        try:
            result = await self._call(inputs, outputs, items[0].call)
        except Exception:
            # One bad row must not fail the others: run each request alone to isolate it.
            self.stats.isolated_failures += 1
            for item in items:
                await self._run_one(item)
            return
        self._scatter(items, result)

    @staticmethod
    def _scatter(items: list[_Item], result: dict[str, np.ndarray]) -> None:
        start = 0
        for item in items:
            end = start + item.rows
            if not item.future.done():
                item.future.set_result({o: result[o][start:end] for o in item.outputs})
            start = end

    async def _run_one(self, item: _Item) -> None:
        try:
            result = await self._call(item.inputs, list(item.outputs), item.call)
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(exc)
            return
        if not item.future.done():
            item.future.set_result({o: result[o] for o in item.outputs})

    async def close(self, drain_timeout_s: float = 0.0) -> None:
        """Stop taking requests; let queued ones run for up to ``drain_timeout_s``, then fail what is
        left with 503. Running batches always finish."""
        self._closed = True
        deadline = time.perf_counter() + drain_timeout_s
        while not self._idle() and time.perf_counter() < deadline:
            await asyncio.sleep(0.002)
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ModelhostError):
                await self._loop_task
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(ModelNotReady("the model was unloaded before this request ran"))
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
