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

from shared.kafka import without_topic_autocreation
from shared.logging import access_logging

log = structlog.get_logger(__name__)


@asynccontextmanager
async def broker_running(
    broker: KafkaBroker,
    *,
    background: Iterable[Callable[[], Coroutine[Any, Any, None]]] = (),
    drain: Iterable[Callable[[], Awaitable[int]]] = (),
    drain_timeout_s: float = 10.0,
) -> AsyncIterator[None]:
    """Start the broker (and its subscribers) and background loops; on exit drain in order:
    stop consuming (in-flight messages are finished, FastStream's graceful timeout), stop the
    background loops, run each ``drain`` job until a round does nothing (e.g. the outbox relay
    publishes what the last messages produced), then close the broker connection."""
    with without_topic_autocreation():  # the platform's topics are created by the platform
        await broker.start()
        tasks = [
            asyncio.create_task(job(), name=getattr(job, "__qualname__", "job"))
            for job in background
        ]
        try:
            yield
        finally:
            await _bounded("stop_consuming", _stop_consuming(broker))
            for task in tasks:
                task.cancel()
            await _bounded("stop_background", asyncio.gather(*tasks, return_exceptions=True))
            for job in drain:
                await _drain(job, timeout_s=drain_timeout_s)
            await _bounded("stop_broker", broker.stop())


STOP_TIMEOUT_S = 30.0
"""The longest one shutdown step may take: a consumer leaving its group while the broker is
rebalancing (or unreachable) can wait for ever, and a stop must not."""


async def _bounded(step: str, stopping: Awaitable[Any]) -> None:
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await stopping
    except TimeoutError:
        log.warning("shutdown_step_timed_out", step=step, timeout_s=STOP_TIMEOUT_S)


async def _stop_consuming(broker: KafkaBroker) -> None:
    for subscriber in list(broker.subscribers):
        try:
            await subscriber.stop()
        except Exception as exc:  # noqa: BLE001 - shutting down: report and stop the others
            log.warning("subscriber_stop_failed", error=repr(exc))


async def _drain(job: Callable[[], Awaitable[int]], *, timeout_s: float) -> None:
    name = getattr(job, "__qualname__", "drain")
    deadline = asyncio.get_running_loop().time() + timeout_s
    done = 0
    try:
        async with asyncio.timeout_at(deadline):
            while (count := await job()) > 0:
                done += count
    except TimeoutError:
        log.warning("drain_timed_out", job=name, done=done)
    except Exception as exc:  # noqa: BLE001 - shutting down: what is left waits for next start
        log.warning("drain_failed", job=name, done=done, error=repr(exc))
    else:
        log.info("drained", job=name, done=done)


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
    """Serve ``app`` with uvicorn until SIGINT/SIGTERM (graceful shutdown runs the lifespan).

    uvicorn's loggers write through the process's logging set-up (``shared.logging``): with
    JSON logs its access and error lines are JSON too, carrying the request id."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        log_level=log_level.lower(),
        access_log=access_logging(),
    )
