"""The campaign model on the benchmark's KPI database: how long a model call takes and how well
the model would have done on the synthetic past (``mrm.bench.history``).

The calls are measurement's own: ``campaign_models.model_query`` (``POST /models/campaign``,
a campaign not yet planned) and ``campaign_models.model_known`` (``GET /campaigns/{id}/model``,
one of the benchmark's campaigns with their 10 M lead events), through a ``Warehouse`` on the
benchmark's chDB client, without HTTP. A call is two parts — reading the peers (one ClickHouse
round trip) and fitting the curves (pure Python) — and each part is timed on its own too, so a
missed target says where the time goes. The backtest is ``campaign_models.backtest``, the code
behind ``GET /models/backtest``.
"""

from __future__ import annotations

import asyncio
import cProfile
import datetime as dt
import pstats
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from itertools import product
from typing import Any

from clickhouse_connect.driver.client import Client

from mrm.bench.history import CHANNELS, HISTORY_END, History, brand_name
from mrm.bench.queries import KpiDataset, Latency
from services.measurement import campaign_models, modelling
from services.measurement.warehouse import Warehouse
from services.measurement.warehouse import peers as peer_tables
from shared.money import FxRates

AS_OF = dt.datetime.combine(HISTORY_END, dt.time(), dt.UTC)
"""When the modelled campaigns start: the past is over, the benchmark's campaigns begin."""
CURRENCY = "USD"


@dataclass(frozen=True)
class ModelTimings:
    """Latencies of the model calls and of their two parts."""

    new_campaign: Latency
    known_campaign: Latency
    peers: Latency
    """``peers_before`` alone (the warehouse part of both calls)."""
    fit: Latency
    """``modelling.model_campaign`` alone on those peers (the curve fits)."""
    own: Latency
    """``peers.campaign_query`` alone: a known campaign's own dimensions and partner."""
    peer_count: int
    """Peers a new campaign's call reads (every campaign started before ``AS_OF``)."""
    peer_parts: dict[str, float]
    """Share of ``peers_before``'s time per query it makes (cProfile), and the rest."""


def _queries(history: History) -> list[modelling.Query]:
    """New campaigns to model: every channel and brand of the past, every third through a
    partner, at budgets across the past's range."""
    spec = history.spec
    combos = list(product(CHANNELS[: spec.channels], range(spec.brands)))
    out = []
    for n, (channel, brand) in enumerate(combos):
        partner = "partner-north" if n % 3 == 2 else None
        budget = Decimal(5_000 + 7_500 * (n % 8))
        out.append(modelling.Query(channel, budget, brand_name(brand), partner))
    return out


def _timed(
    loop: asyncio.AbstractEventLoop, call: Callable[[int], Awaitable[object]], keys: int, calls: int
) -> Latency:
    """``calls`` calls of ``call(n)`` for n cycling over ``keys`` keys, after a warm-up each."""
    for n in range(min(keys, 3)):
        loop.run_until_complete(call(n))
    samples = []
    for n in range(calls):
        started = time.perf_counter()
        loop.run_until_complete(call(n % keys))
        samples.append(time.perf_counter() - started)
    return Latency(samples)


def time_model_calls(
    client: Client, *, dataset: KpiDataset, history: History, calls: int
) -> ModelTimings:
    """p50/p99 material of a new campaign's and a known campaign's model, and of their parts."""
    store = Warehouse(client)
    fx = FxRates(base=CURRENCY, rates={})
    queries = _queries(history)
    known = dataset.campaign_ids

    async def new_campaign(n: int) -> object:
        return await campaign_models.model_query(
            store, fx, queries[n], as_of=AS_OF, currency=CURRENCY
        )

    async def known_campaign(n: int) -> object:
        return await campaign_models.model_known(store, fx, campaign_id=known[n], now=AS_OF)

    async def peers(_: int) -> object:
        return await store.run(peer_tables.peers_before, as_of=AS_OF)

    async def own(n: int) -> object:
        return await store.run(peer_tables.campaign_query, campaign_id=known[n])

    loop = asyncio.new_event_loop()
    try:
        found = loop.run_until_complete(store.run(peer_tables.peers_before, as_of=AS_OF))
        candidates = [peer for peer, _ in found]

        async def fit(n: int) -> object:
            return modelling.model_campaign(queries[n], candidates)

        return ModelTimings(
            new_campaign=_timed(loop, new_campaign, len(queries), calls),
            known_campaign=_timed(loop, known_campaign, len(known), calls),
            peers=_timed(loop, peers, 1, calls),
            fit=_timed(loop, fit, len(queries), calls),
            own=_timed(loop, own, len(known), calls),
            peer_count=len(candidates),
            peer_parts=profile_peers(client, calls=max(1, min(calls, 20))),
        )
    finally:
        loop.close()


PEER_QUERIES = {
    ("fetch", "_campaigns"): "dimensions query",
    ("each_campaign", "_campaigns"): "measures query (each_campaign)",
    ("_partners", "_campaigns"): "partners query",
}
"""(function, its caller) in ``peers._campaigns`` → the part of ``peers_before`` it is."""


def profile_peers(client: Client, *, calls: int) -> dict[str, float]:
    """Share of ``peers_before``'s time in each query it makes, from cProfile over ``calls``
    calls on this thread (the queries' native time is charged to the call that waits)."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        peer_tables.peers_before(client, as_of=AS_OF)
    profiler.disable()
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(ct for (_, _, name), (_, _, _, ct, _) in stats.items() if name == "peers_before")
    parts = dict.fromkeys(PEER_QUERIES.values(), 0.0)
    for (_, _, name), (_, _, _, _, callers) in stats.items():
        for (_, _, caller), edge in callers.items():
            part = PEER_QUERIES.get((name, caller))
            if part is not None:
                parts[part] += edge[3]
    if total <= 0:
        return {}
    shares = {part: seconds / total for part, seconds in parts.items()}
    shares["the rest (building the peers)"] = max(0.0, 1 - sum(shares.values()))
    return shares


def run_backtest(client: Client, *, min_peers: int = 3) -> campaign_models.Backtest:
    """``GET /models/backtest`` as of the day the past is over."""
    fx = FxRates(base=CURRENCY, rates={})
    return asyncio.run(
        campaign_models.backtest(
            Warehouse(client), fx, as_of=AS_OF, currency=CURRENCY, min_peers=min_peers
        )
    )
