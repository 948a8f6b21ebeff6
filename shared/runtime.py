"""Running a service: the broker and background tasks inside the lifespan, uvicorn outside."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager

import structlog
import uvicorn
from fastapi import FastAPI
from faststream.kafka import KafkaBroker

log = structlog.get_logger(__name__)


@asynccontextmanager
async def broker_running(
    broker: KafkaBroker, *, background: Iterable[Callable[[], Awaitable[None]]] = ()
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


def serve(app: FastAPI, *, host: str, port: int, log_level: str = "info") -> None:
    """Serve ``app`` with uvicorn until SIGINT/SIGTERM (graceful shutdown runs the lifespan)."""
    uvicorn.run(
        app, host=host, port=port, log_config=None, log_level=log_level.lower(), access_log=False
    )
