"""Running a service: the broker and background loops inside the lifespan, uvicorn outside."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI
from faststream.kafka import KafkaBroker

log = structlog.get_logger(__name__)


@asynccontextmanager
async def broker_running(
    broker: KafkaBroker, *, background: Iterable[Callable[[], Coroutine[Any, Any, None]]] = ()
) -> AsyncIterator[None]:
    """Start the broker (and its subscribers) and background loops; stop all on exit."""
    await broker.start()
    tasks = [
        asyncio.create_task(job(), name=getattr(job, "__qualname__", "job")) for job in background
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await broker.stop()


async def supervise(name: str, job: Callable[[], Awaitable[None]], *, every_s: float) -> None:
    """Run ``job`` every ``every_s`` seconds forever; a failing round is logged and retried."""
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a periodic job must survive a bad round
            log.warning("periodic_job_failed", job=name, error=repr(exc))
        await asyncio.sleep(every_s)


class WakeableLoop:
    """Runs rounds of work forever: at once after a full batch, else on ``wake()`` or a poll."""

    def __init__(
        self,
        work: Callable[[], Awaitable[int]],
        *,
        full_batch: int,
        poll_interval_s: float,
        failure_event: str,
    ) -> None:
        self.work = work
        self.full_batch = full_batch
        self.poll_interval_s = poll_interval_s
        self.failure_event = failure_event
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Start the next round now instead of after the poll interval (safe from any thread)."""
        loop = self._loop
        if loop is None:
            return  # not running yet; its first round comes without waiting anyway
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wakeup.set()
        else:
            loop.call_soon_threadsafe(self._wakeup.set)

    async def run(self) -> None:
        """Run rounds until cancelled; a failing round is logged and the next one retries."""
        self._loop = asyncio.get_running_loop()
        while True:
            try:
                done = await self.work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next round retries what this one left
                log.warning(self.failure_event, error=repr(exc))
                done = 0
            if done < self.full_batch:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self.poll_interval_s)


def serve(app: FastAPI, *, host: str, port: int, log_level: str = "info") -> None:
    """Serve ``app`` with uvicorn until SIGINT/SIGTERM (graceful shutdown runs the lifespan)."""
    uvicorn.run(
        app, host=host, port=port, log_config=None, log_level=log_level.lower(), access_log=False
    )
