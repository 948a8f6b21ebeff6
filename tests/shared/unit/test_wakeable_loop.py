"""shared.runtime.WakeableLoop: full batches run back to back, wake() from any thread, polling."""

from __future__ import annotations

import asyncio
import threading

from shared.runtime import WakeableLoop


async def test_rounds_follow_full_batches_wakes_from_threads_and_survive_failures() -> None:
    results = [10, 10, 0, RuntimeError("database down"), 0]
    rounds = asyncio.Queue[int]()

    async def work() -> int:
        rounds.put_nowait(len(results))
        result = results.pop(0) if results else 0
        if isinstance(result, Exception):
            raise result
        return result

    loop = WakeableLoop(work, full_batch=10, poll_interval_s=60, failure_event="test_round_failed")
    task = asyncio.create_task(loop.run())
    try:
        # two full batches and the partial one run without waiting
        for remaining in (5, 4, 3):
            assert await asyncio.wait_for(rounds.get(), timeout=5) == remaining
        assert rounds.empty()
        waker = threading.Thread(target=loop.wake)
        waker.start()
        waker.join()
        assert await asyncio.wait_for(rounds.get(), timeout=5) == 2  # fails, logged
        loop.wake()
        assert await asyncio.wait_for(rounds.get(), timeout=5) == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_without_wake_the_next_round_comes_after_the_poll_interval() -> None:
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        return 0

    loop = WakeableLoop(work, full_batch=10, poll_interval_s=0.05, failure_event="unused")
    task = asyncio.create_task(loop.run())
    await asyncio.sleep(0.3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert 2 <= calls <= 10  # one at start, then one per poll interval
