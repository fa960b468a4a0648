"""The scheduler batches concurrent chat requests into shared generations and serves everything below capacity."""

from __future__ import annotations

import asyncio
import threading
import time

from ehrforge.serve.scheduler import Overloaded, Scheduler
from ehrforge.core.types import Generation


class RecordingBackend:
    """Takes ``step_s`` per call whatever the batch size (a decoding step is shared), and records batch sizes."""

    name = "recording"

    def __init__(self, step_s: float = 0.05) -> None:
        self.step_s = step_s
        self.batches: list[int] = []
        self.lock = threading.Lock()

    def generate(self, batch, *, max_new_tokens=16, temperature=0.0, seed=None):
        with self.lock:
            self.batches.append(len(batch))
        time.sleep(self.step_s)
        return [Generation(text=m[-1]["content"].upper(), tokens=["x"]) for m in batch]


def _chat(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"q{i}"}]


def test_requests_arriving_a_few_ms_apart_share_one_generation():
    backend = RecordingBackend()

    async def main():
        sched = Scheduler(backend, queue_size=64, max_batch=8)

        async def client(i):
            await asyncio.sleep(0.002 * i)  # staggered arrivals, like real concurrent clients
            return await sched.generate(_chat(i), max_new_tokens=8, temperature=0.0, seed=None)

        out = await asyncio.gather(*(client(i) for i in range(4)))
        sched.close()
        return out

    out = asyncio.run(main())
    assert [g.text for g in out] == ["Q0", "Q1", "Q2", "Q3"]  # each request gets its own answer
    assert backend.batches == [4]


def test_fifty_concurrent_clients_with_queue_64_are_all_served():
    backend = RecordingBackend(step_s=0.02)

    async def main():
        sched = Scheduler(backend, queue_size=64, max_batch=8)
        results = await asyncio.gather(*(sched.generate(_chat(i), max_new_tokens=8, temperature=0.0, seed=None)
                                         for i in range(50)), return_exceptions=True)
        snap = sched.snapshot()
        sched.close()
        return results, snap

    results, snap = asyncio.run(main())
    assert not [r for r in results if isinstance(r, Exception)]
    assert snap["rejected_full"] == 0 and snap["served"] == 50
    assert max(backend.batches) == 8 and len(backend.batches) <= 8  # 50 requests in ceil(50/8)=7 shared batches


def test_a_full_queue_still_refuses():
    backend = RecordingBackend(step_s=0.05)

    async def main():
        sched = Scheduler(backend, queue_size=2, max_batch=1, batch_window_s=0)
        results = await asyncio.gather(*(sched.generate(_chat(i), max_new_tokens=8, temperature=0.0, seed=None)
                                         for i in range(6)), return_exceptions=True)
        sched.close()
        return results

    results = asyncio.run(main())
    assert any(isinstance(r, Overloaded) for r in results) and any(isinstance(r, Generation) for r in results)
