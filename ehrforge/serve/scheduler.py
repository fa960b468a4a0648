"""The bounded queue in front of the model.

A CPU model answers one request at a time, so requests wait. Waiting costs memory, so the wait is bounded: at most
``queue_size`` requests wait, a request that finds the queue full is refused at once (the app answers 503 with
Retry-After), and one that waited longer than ``queue_timeout_s`` is refused instead of being run late for a client
that has likely given up. Chat requests that wait together with identical generation settings go to the backend as
one batch (``Backend.generate`` takes a batch), which is where a local model gains throughput under load: a free
worker waits ``batch_window_s`` (10 ms) for concurrent requests to arrive, then they share every decoding step.
Batches form between generations (dynamic batching); a request arriving mid-generation joins the next batch,
because neither CTranslate2 nor transformers' ``generate`` can add a sequence to a running batch.

Model calls run in a small thread pool (``workers`` threads) so the event loop keeps answering health checks,
401/413/429/503 responses and streaming while the model computes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ehrforge.core.types import Generation, Message


class Overloaded(Exception):
    """The queue is full, or a request waited too long; the client should retry later."""

    def __init__(self, reason: str, retry_after_s: float = 1.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass
class _Job:
    future: asyncio.Future
    enqueued: float
    fn: Callable[[], Any] | None = None  # an arbitrary blocking call (task.ask, streaming)
    messages: list[Message] | None = None  # a chat generation, batchable with others of the same ``params``
    params: tuple = ()


@dataclass
class SchedulerStats:
    served: int = 0
    rejected_full: int = 0
    rejected_timeout: int = 0
    failed: int = 0
    batches: int = 0
    largest_batch: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Scheduler:
    def __init__(self, backend: Any, *, workers: int = 1, queue_size: int = 32, queue_timeout_s: float = 60.0, max_batch: int = 8,
                 batch_window_s: float = 0.01) -> None:
        self.backend = backend
        self.batch_window_s = batch_window_s
        self.workers = workers
        self.queue_size = queue_size
        self.queue_timeout_s = queue_timeout_s
        self.max_batch = max_batch
        self.stats = SchedulerStats()
        self._pending: deque[_Job] = deque()
        self._busy = 0
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ehrforge-model")
        self._cond: asyncio.Condition | None = None
        self._tasks: list[asyncio.Task] = []

    # -- public -----------------------------------------------------------------------------------------------------
    async def generate(self, messages: list[Message], *, max_new_tokens: int, temperature: float, seed: int | None) -> Generation:
        """One chat generation, possibly batched with other waiting requests."""
        return await self._submit(_Job(self._new_future(), time.monotonic(), messages=messages,
                                       params=(max_new_tokens, temperature, seed)))

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Run a blocking model-using call (``task.ask``, a streaming generation) under the same queue bound."""
        return await self._submit(_Job(self._new_future(), time.monotonic(), fn=fn))

    def snapshot(self) -> dict[str, Any]:
        s = self.stats
        return {"waiting": len(self._pending), "running": self._busy, "workers": self.workers, "queue_size": self.queue_size,
                "served": s.served, "rejected_full": s.rejected_full, "rejected_timeout": s.rejected_timeout,
                "failed": s.failed, "batches": s.batches, "largest_batch": s.largest_batch}

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- internals --------------------------------------------------------------------------------------------------
    def _new_future(self) -> asyncio.Future:
        return asyncio.get_running_loop().create_future()

    def _ensure_started(self) -> asyncio.Condition:
        # Started lazily inside the server's event loop (an app object may be built outside any loop).
        if self._cond is None:
            self._cond = asyncio.Condition()
            self._tasks = [asyncio.get_running_loop().create_task(self._worker()) for _ in range(self.workers)]
        return self._cond

    async def _submit(self, job: _Job) -> Any:
        cond = self._ensure_started()
        idle = self.workers - self._busy
        if len(self._pending) >= self.queue_size + max(0, idle):
            self.stats.rejected_full += 1
            raise Overloaded(f"server busy: {len(self._pending)} requests already waiting", retry_after_s=2.0)
        async with cond:
            self._pending.append(job)
            cond.notify()
        return await job.future  # cancelled with the request if the client goes away; the worker then skips it

    def _take_batch(self) -> list[_Job]:
        first = self._pending.popleft()
        batch = [first]
        if first.messages is None:
            return batch
        keep: deque[_Job] = deque()
        while self._pending and len(batch) < self.max_batch:
            job = self._pending.popleft()
            (batch if job.messages is not None and job.params == first.params else keep).append(job)
        keep.extend(self._pending)  # preserve arrival order of everything not taken
        self._pending = keep
        return batch

    async def _worker(self) -> None:
        assert self._cond is not None
        loop = asyncio.get_running_loop()
        while True:
            async with self._cond:
                while not self._pending:
                    await self._cond.wait()
            if self.batch_window_s > 0 and len(self._pending) < self.max_batch and self._pending[0].messages is not None:
                # Requests of concurrent clients arrive a few ms apart: waiting this long lets them share every
                # decoding step of one batch instead of each paying a whole generation in turn.
                await asyncio.sleep(self.batch_window_s)
            async with self._cond:
                if not self._pending:  # another worker took them meanwhile
                    continue
                batch = self._take_batch()
                self._busy += 1
            try:
                now = time.monotonic()
                live = []
                for job in batch:
                    if job.future.done():
                        continue  # the client gave up while waiting
                    if now - job.enqueued > self.queue_timeout_s:
                        self.stats.rejected_timeout += 1
                        job.future.set_exception(Overloaded(f"waited more than {self.queue_timeout_s:g} s for the model", 5.0))
                        continue
                    live.append(job)
                if live:
                    await self._run(loop, live)
            finally:
                self._busy -= 1

    async def _run(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job]) -> None:
        try:
            if jobs[0].fn is not None:
                results = [await loop.run_in_executor(self._executor, jobs[0].fn)]
            else:
                max_new_tokens, temperature, seed = jobs[0].params
                batch = [j.messages for j in jobs]
                results = await loop.run_in_executor(
                    self._executor,
                    lambda: self.backend.generate(batch, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed),
                )
                self.stats.batches += 1
                self.stats.largest_batch = max(self.stats.largest_batch, len(jobs))
        except Exception as exc:  # noqa: BLE001 - every waiting client must hear about the failure
            self.stats.failed += len(jobs)
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        self.stats.served += len(jobs)
        for job, result in zip(jobs, results):
            if not job.future.done():
                job.future.set_result(result)
