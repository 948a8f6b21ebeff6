"""``mrm bench``: every SPEC §7 performance figure in one run, on the embedded stack.

Order matters on a small machine, so phases never overlap: broker + pre-published leads →
bare consumer → bare chDB insert → the real measurement service (sustained ingestion, DLQ,
freshness, memory, profile) → service stopped → the real execution service on a fresh broker
(spend at a steady rate) → KPI queries on a large history in the benchmark's own chDB.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from mrm.bench import figures as fig
from mrm.bench.data import LeadStream, interleave, malformed_messages
from mrm.bench.execution import measure_execution
from mrm.bench.freshness import measure_freshness
from mrm.bench.history import HistorySpec
from mrm.bench.ingest import (
    expected_company_funnel,
    ingest_more,
    wait_ingested,
)
from mrm.bench.kafka import count_messages, publish_fast, scan_dead_letters
from mrm.bench.model_figures import backtest_lines
from mrm.bench.models import run_backtest, time_model_calls
from mrm.bench.queries import bare_insert, build_kpi_dataset, time_kpi_queries
from mrm.bench.report import Report, machine, markdown, print_table
from mrm.bench.service import ExecutionProcess, MeasurementProcess, metric
from services.measurement import warehouse
from shared.embedded import EmbeddedBroker
from shared.kafka import ensure_topics
from shared.topics import LEADS, all_topics_with_dlq, dlq


@dataclass(frozen=True)
class BenchConfig:
    """Sizes and knobs of a run; the defaults are the SPEC's reference sizes."""

    events: int = 1_000_000
    query_events: int = 10_000_000
    malformed_ratio: float = 0.001
    insert_chunk: int = 5000
    freshness_rate: float = 5000.0
    freshness_seconds: float = 20.0
    probe_every: int = 100
    probe_campaigns: int = 4
    poll_interval_s: float = 0.1
    query_calls: int = 50
    campaigns: int = 40
    plans: int = 4
    partitions: int = 3
    memory_events: int = 10_000_000
    memory_budget_s: float = 720.0
    profile_events: int = 300_000
    profile_seconds: float = 15.0
    execution_rate: float = 5000.0
    execution_seconds: float = 60.0
    execution_campaigns: int = 20
    execution_backlog: int = 100_000
    history_campaigns: int = 300
    """Past campaigns for the campaign model's figures (0 = no model figures)."""
    history_noise: float = 0.2
    output: Path | None = Path("BENCHMARKS.md")
    work_dir: Path | None = None
    keep: bool = False


def run(config: BenchConfig, *, command: str, console: Console | None = None) -> Report:
    """Run every phase, print the table, write ``config.output``; return the report."""
    console = console or Console(width=None if sys.stdout.isatty() else 150)
    report = Report(command=command, started=dt.datetime.now(dt.UTC))
    machine_info = machine()
    work = config.work_dir or Path(tempfile.mkdtemp(prefix="mrm-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    run_id = secrets.token_hex(4)
    results = fig.Results(config=config)
    try:
        with EmbeddedBroker(log_file=work / "broker.log") as broker:
            _service_phases(config, broker.bootstrap, work, run_id, results, console)
        if config.execution_seconds > 0 and config.execution_rate > 0:
            with EmbeddedBroker(log_file=work / "broker-execution.log") as broker:
                _execution_phase(config, broker.bootstrap, work, run_id, results, console)
        _query_phase(config, work, run_id, results, console)
    finally:
        if not config.keep and config.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    report.figures = fig.figures(results)
    report.notes = fig.notes(results)
    report.details = fig.details(results)
    report.profile = fig.profile_lines(results)
    report.backtest = backtest_lines(results)
    report.finished = dt.datetime.now(dt.UTC)
    print_table(report.figures, console=console)
    for note in report.notes:
        console.print(note)
    if config.output is not None:
        previous = config.output.read_text() if config.output.exists() else ""
        config.output.write_text(markdown(report, machine_info=machine_info, previous=previous))
        console.print(f"written: {config.output}")
    return report


def _service_phases(
    config: BenchConfig,
    bootstrap: str,
    work: Path,
    run_id: str,
    results: fig.Results,
    console: Console,
) -> None:
    ensure_topics(bootstrap, all_topics_with_dlq(), partitions=config.partitions)
    stream = LeadStream(run=run_id, campaigns=config.campaigns, partitions=config.partitions)
    bad = malformed_messages(run_id, max(1, round(config.events * config.malformed_ratio)))
    bad_on_leads = sum(1 for m in bad if m.topic == LEADS)
    every = max(1, config.events // len(bad))

    console.print(f"[bold]1/8[/] pre-publishing {config.events:,} lead events (+{len(bad)} bad)")
    results.published = asyncio.run(
        publish_fast(bootstrap, interleave(stream.messages(0, config.events), bad, every=every))
    )
    console.print("[bold]2/8[/] bare consumer (aiokafka, counts only)")
    results.bare_consumer = asyncio.run(
        count_messages(bootstrap, LEADS, expect=config.events + bad_on_leads)
    )
    console.print(
        f"    published {results.published.rate:,.0f} msgs/s; "
        f"bare consumer {results.bare_consumer.rate:,.0f} msgs/s"
    )
    console.print("[bold]3/8[/] bare insert_arrow into chDB")
    client = warehouse.connect(f"chdb://{work / 'bench-clickhouse'}", database="default")
    try:
        results.bare_insert = bare_insert(
            client,
            database="bench_raw",
            stream=stream,
            rows=config.events,
            chunk=config.insert_chunk,
        )
        client.command("DROP DATABASE IF EXISTS bench_raw SYNC")
        console.print(f"    bare insert {results.bare_insert.rate:,.0f} rows/s")
    finally:
        client.close()

    console.print("[bold]4/8[/] the measurement service ingests the backlog")
    with MeasurementProcess(bootstrap=bootstrap, data_dir=work / "measurement") as service:
        results.startup_s = service.start()
        ready_at = time.perf_counter()
        results.ingestion = wait_ingested(
            service,
            rows=config.events,
            expected_funnel=expected_company_funnel(stream, rows=config.events),
            lead_messages=config.events + bad_on_leads,
            ready_at=ready_at,
            timeout_s=max(600.0, config.events / 500),
        )
        results.rss_after_ingestion = service.rss_bytes()
        console.print(
            f"    ready in {results.startup_s:.1f} s; ingested "
            f"{results.ingestion.rate:,.0f} rows/s over {results.ingestion.seconds:.1f} s"
        )
        markers = {m.marker: m.kind for m in bad}
        results.malformed = len(bad)
        results.dead_letters = asyncio.run(
            scan_dead_letters(
                bootstrap, sorted({dlq(m.topic) for m in bad}), markers=markers, timeout_s=120
            )
        )
        results.dlq_metric = sum(
            v for k, v in service.metrics().items() if k.startswith("dead_letters_total")
        )

        console.print(
            f"[bold]5/8[/] freshness: {config.freshness_rate:,.0f} spend/s "
            f"for {config.freshness_seconds:.0f} s"
        )
        results.freshness = asyncio.run(
            measure_freshness(
                bootstrap=bootstrap,
                url=service.url,
                run=run_id,
                rate=config.freshness_rate,
                seconds=config.freshness_seconds,
                probe_every=config.probe_every,
                probe_campaigns=config.probe_campaigns,
                poll_interval_s=config.poll_interval_s,
            )
        )
        lat = sorted(results.freshness.latencies_s) or [float("nan")]
        console.print(
            f"    {len(lat):,} probes, p50 {lat[len(lat) // 2] * 1000:,.0f} ms, "
            f"max {lat[-1] * 1000:,.0f} ms, {results.freshness.unresolved} unresolved"
        )
        _memory_and_profile(config, bootstrap, work, stream, service, results, console)


def _memory_and_profile(
    config: BenchConfig,
    bootstrap: str,
    work: Path,
    stream: LeadStream,
    service: MeasurementProcess,
    results: fig.Results,
    console: Console,
) -> None:
    """More leads through the service: up to ``memory_events`` when the measured rate makes that
    fit in ``memory_budget_s``, else ``profile_events``; py-spy samples the start of it."""
    assert results.ingestion is not None
    remaining = max(0, config.memory_events - config.events)
    estimate = remaining / results.ingestion.rate if results.ingestion.rate else float("inf")
    extra = remaining if remaining and estimate <= config.memory_budget_s else 0
    results.memory_estimate_s = estimate
    if not extra:
        extra = config.profile_events
    if not extra:
        results.rss_final = service.rss_bytes()
        results.rss_events = config.events
        return
    console.print(
        f"[bold]6/8[/] {extra:,} more lead events (memory"
        + (f", py-spy {config.profile_seconds:.0f} s" if config.profile_seconds > 0 else "")
        + ")"
    )
    consumed = metric(service.metrics(), "messages_in_total", topic=LEADS)
    results.extra_ingest_s, results.profile = ingest_more(
        service,
        bootstrap=bootstrap,
        stream=stream,
        start=config.events,
        count=extra,
        consumed_before=consumed,
        profile_s=min(config.profile_seconds, extra / max(1.0, results.ingestion.rate) * 0.7),
        profile_out=work / "py-spy.txt",
        timeout_s=max(600.0, extra / 200),
    )
    results.rss_final = service.rss_bytes()
    results.rss_events = config.events + extra
    expected = expected_company_funnel(stream, rows=config.events + extra)
    results.final_funnel_ok = service.funnel() == expected


def _execution_phase(
    config: BenchConfig,
    bootstrap: str,
    work: Path,
    run_id: str,
    results: fig.Results,
    console: Console,
) -> None:
    console.print(
        f"[bold]7/8[/] execution: {config.execution_rate:,.0f} spend/s for "
        f"{config.execution_seconds:.0f} s on a fresh broker"
    )
    ensure_topics(bootstrap, all_topics_with_dlq(), partitions=config.partitions)
    with ExecutionProcess(bootstrap=bootstrap, data_dir=work / "execution") as service:
        service.start()
        results.execution = asyncio.run(
            measure_execution(
                service,
                run=run_id,
                rate=config.execution_rate,
                seconds=config.execution_seconds,
                campaigns=config.execution_campaigns,
                backlog=config.execution_backlog,
                partitions=config.partitions,
            )
        )
    spend = results.execution
    console.print(
        f"    applied {spend.rate:,.0f} events/s; {spend.behind_s:,.1f} s behind at the end; "
        f"a backlog of {spend.backlog:,} drained at {spend.backlog_rate:,.0f} events/s"
        + ("" if spend.verified else " (NOT verified: spend, backlog or threshold events off)")
    )


def _query_phase(
    config: BenchConfig, work: Path, run_id: str, results: fig.Results, console: Console
) -> None:
    console.print(
        f"[bold]8/8[/] KPI queries on {config.query_events:,} lead events "
        f"({config.campaigns} campaigns, {config.plans} plans)"
    )
    client = warehouse.connect(f"chdb://{work / 'bench-clickhouse'}", database="default")
    try:
        results.dataset = build_kpi_dataset(
            client,
            database="bench_kpi",
            run=run_id,
            lead_events=config.query_events,
            campaigns=config.campaigns,
            plans=config.plans,
            history=HistorySpec(campaigns=config.history_campaigns, noise=config.history_noise)
            if config.history_campaigns > 0
            else None,
        )
        results.campaign_latency, results.plan_latency = time_kpi_queries(
            client, results.dataset, calls=config.query_calls
        )
        if results.dataset.history is not None:
            console.print(
                f"    campaign model: {config.query_calls} calls each, then the backtest of "
                f"{config.history_campaigns:,} past campaigns"
            )
            results.model_timings = time_model_calls(
                client,
                dataset=results.dataset,
                history=results.dataset.history,
                calls=config.query_calls,
            )
            results.backtest = run_backtest(client)
    finally:
        client.close()
