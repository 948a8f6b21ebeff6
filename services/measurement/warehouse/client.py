"""Connecting to ClickHouse (a server or the in-process chDB), readiness, and ``Warehouse``: the
pool that runs ClickHouse calls from async code.

The same SQL runs on a ClickHouse server (``http(s)://`` URL) and on the in-process chDB engine
(``chdb:///path``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from services.measurement.warehouse._sql import ident

DEFAULT_DATABASE = "mrm"


CLUSTER_SETTINGS: dict[str, Any] = {
    "distributed_product_mode": "global",
    "distributed_foreground_insert": 1,
}
"""Session settings when the tables are Distributed (``MRM_CLICKHOUSE_CLUSTER``): IN / JOIN
subqueries over Distributed tables run once and are shipped to the shards (ClickHouse refuses
them by default), and an insert returns once its shard holds the rows (read-after-write, and
deduplication tokens reach the shard's table); see ``cluster``."""


def connect(
    url: str,
    *,
    database: str = DEFAULT_DATABASE,
    cluster: str = "",
    settings: Mapping[str, Any] | None = None,
) -> Client:
    """A client for ``chdb:///path`` (directory created) or ``http(s)://…``, using ``database``;
    with ``cluster``, one whose session has ``CLUSTER_SETTINGS``; ``settings``
    (``MRM_CLICKHOUSE_SETTINGS``) over those."""
    parsed = urlparse(url)
    if parsed.scheme == "chdb":
        if importlib.util.find_spec("chdb") is None:
            # chDB is the `embedded` extra, which the production image does not install
            raise RuntimeError(
                "MRM_CLICKHOUSE_URL is a chdb:// URL but chDB is not installed: install "
                "mrm-platform[embedded], or point MRM_CLICKHOUSE_URL at a ClickHouse server "
                "(http://user:password@host:8123)"
            )
        if parsed.path and not parsed.netloc:
            os.makedirs(parsed.path, exist_ok=True)
    session = {**(CLUSTER_SETTINGS if cluster else {}), **(settings or {})}
    options: dict[str, Any] = {"settings": session} if session else {}
    if parsed.scheme in ("http", "https"):
        # query parameters in the request body, not the URL: a segment's member ids or a
        # scope's campaign ids can exceed a server's URL limit (http_max_uri_size)
        client = clickhouse_connect.get_client(dsn=url, form_encode_query_params=True, **options)
    else:
        client = clickhouse_connect.get_client(dsn=url, **options)
    client.command(f"CREATE DATABASE IF NOT EXISTS {ident(database)}")
    client.database = database
    return client


def ping(client: Client) -> bool:
    """True when ClickHouse answers a trivial query (readiness)."""
    try:
        return bool(client.command("SELECT 1"))
    except (ClickHouseError, OSError, RuntimeError):
        return False


class Warehouse:
    """Runs ClickHouse calls from async code on worker threads: writes one at a time on the
    writer's client, reads on a small pool of reader clients so KPI requests and the target
    monitor do not queue behind ingestion inserts.

    A clickhouse-connect client (one chDB handle or one HTTP session) takes one call at a time;
    chDB runs the calls of different handles to the same engine in parallel, and an insert that
    returned is visible to every handle. Without readers, reads share the writer (one lock).
    """

    def __init__(self, client: Client, *, readers: Sequence[Client] = ()) -> None:
        self.client = client
        self.readers = tuple(readers)
        self._lock = threading.Lock()
        self._idle: asyncio.Queue[Client] | None = None

    async def run(self, function: Callable[..., Any], /, **kwargs: Any) -> Any:
        """Run a read ``function(client, **kwargs)`` on a free reader and return its result."""
        if not self.readers:
            return await self.write(function, **kwargs)
        if self._idle is None:
            self._idle = asyncio.Queue()
            for reader in self.readers:
                self._idle.put_nowait(reader)
        idle = self._idle
        client = await idle.get()
        call = asyncio.ensure_future(asyncio.to_thread(function, client, **kwargs))
        # back to the pool when the call is over, not when a cancelled caller stops waiting
        call.add_done_callback(lambda _: idle.put_nowait(client))
        return await asyncio.shield(call)

    async def write(self, function: Callable[..., Any], /, **kwargs: Any) -> Any:
        """Run ``function(client, **kwargs)`` on the writer, one call at a time."""
        return await asyncio.to_thread(self._locked, function, kwargs)

    def _locked(self, function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        with self._lock:
            return function(self.client, **kwargs)
