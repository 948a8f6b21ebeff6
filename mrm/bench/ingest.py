"""Sustained ingestion through the real service: first → last row visible, then more for memory
and the profile."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mrm.bench.data import LeadStream, company_funnel, interleave
from mrm.bench.kafka import BenchTimeout, publish_fast
from mrm.bench.service import MeasurementProcess, metric
from shared.topics import LEADS

HANDLER = "on_events"


@dataclass(frozen=True)
class Ingestion:
    """Rows of one stream made queryable by the service, and when."""

    rows: int
    first_visible_s: float
    """Seconds from the service being ready to its first batch being durable."""
    seconds: float
    """First batch durable → every row visible through the funnel API."""
    verified: bool

    @property
    def rate(self) -> float:
        """Rows per second, first to last row visible."""
        return self.rows / self.seconds if self.seconds else 0.0


def wait_ingested(
    service: MeasurementProcess,
    *,
    rows: int,
    expected_funnel: dict[str, int],
    lead_messages: float,
    ready_at: float,
    timeout_s: float,
    poll_s: float = 0.1,
) -> Ingestion:
    """Watch ``/metrics`` until the leads topic is consumed, then the company funnel until it
    shows every row; ``lead_messages`` is the consumed-counter value to wait for."""
    deadline = time.monotonic() + timeout_s
    first: float | None = None
    # the service was just started: every batch it has handled is of this backlog (reading a
    # "before" count here would miss a small backlog consumed before the first poll, and wait
    # for a batch that never comes)
    batches_before = 0.0
    while True:
        service.check_alive()
        if time.monotonic() > deadline:
            raise BenchTimeout(f"ingestion of {rows} rows not visible after {timeout_s:.0f} s")
        samples = service.metrics()
        now = time.perf_counter()
        if first is None and metric(samples, "handler_seconds_count", handler=HANDLER) > (
            batches_before
        ):
            first = now
        if first is not None and metric(samples, "messages_in_total", topic=LEADS) >= (
            lead_messages
        ):
            break
        time.sleep(poll_s)
    assert first is not None
    while True:
        service.check_alive()
        stages = service.funnel()
        now = time.perf_counter()
        if stages == expected_funnel:
            return Ingestion(
                rows=rows, first_visible_s=first - ready_at, seconds=now - first, verified=True
            )
        if time.monotonic() > deadline:
            raise BenchTimeout(f"funnel {stages} never reached {expected_funnel}")
        time.sleep(poll_s)


@dataclass
class Profile:
    """Where the service spent its CPU while ingesting, from py-spy samples."""

    samples: int = 0
    categories: dict[str, float] = field(default_factory=dict)
    project_functions: list[tuple[str, float]] = field(default_factory=list)
    """Inclusive share of the project's own functions (services/, shared/)."""
    leaf_functions: list[tuple[str, float]] = field(default_factory=list)
    """Self share of the innermost Python frames (native time is charged to its caller)."""
    error: str | None = None


# (label, substring of a py-spy frame), most specific first; a stack counts for the first match.
_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("batch decode + checks (pyarrow.json → compute)", "(shared/events/columnar.py"),
    (
        "batch decode + checks (pyarrow.json → compute)",
        "(services/measurement/warehouse/columns.py",
    ),
    ("envelope decode + validation (json + pydantic)", "(shared/events/registry.py"),
    ("dead-lettering", "dead_letter ("),
    ("StoredEvent / rows per table (Python objects)", "rows_by_table ("),
    ("ClickHouse insert (clickhouse-connect + chDB)", "insert_batch ("),
    ("ClickHouse insert (clickhouse-connect + chDB)", "insert_events ("),
    ("campaign currency lookup (one query per batch)", "campaign_currencies ("),
    # the monitor's queries run on worker threads: their stacks hold no monitor.py frame
    ("target monitor (queries of a round)", "campaigns_kpis ("),
    ("target monitor (queries of a round)", "targets_by_campaign ("),
    ("target monitor (queries of a round)", "alert_states_of ("),
    ("target monitor (queries of a round)", "save_alert_states_of ("),
    ("target monitor (queries of a round)", "plan_kpis ("),
    ("target monitor (evaluation loop, snapshots)", "(services/measurement/monitor.py"),
    ("KPI / funnel queries (HTTP)", "fetch (services/measurement/warehouse/_sql.py"),
    ("lag gauge + metrics", "_observe_lag ("),
    ("offset commits (consumer kit)", "_commit ("),
    ("measurement handler (currency check, StoredEvent)", "(services/measurement/handlers.py"),
    ("consumer kit per message (metrics, Consumed)", "_decode ("),
    ("Kafka fetch (aiokafka)", "(aiokafka/"),
    ("FastStream + consumer kit", "(faststream/"),
    ("HTTP (FastAPI / uvicorn protocol)", "(starlette/"),
)
_PROJECT = ("(services/", "(shared/")
_ENTRY = ("__main__.py", "(shared/runtime.py")


def _is_project(frame: str) -> bool:
    return any(p in frame for p in _PROJECT) and not any(e in frame for e in _ENTRY)


def _function(frame: str) -> str:
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def summarise_profile(raw: str) -> Profile:
    """Categories, project functions and leaf functions of py-spy's raw (collapsed) output."""
    total = 0
    categories: Counter[str] = Counter()
    project: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        label = next(
            (label for label, needle in _CATEGORIES if any(needle in f for f in frames)),
            "other (event loop, threads, logging)",
        )
        categories[label] += count
        leaves[_function(frames[-1])] += count
        for name in {_function(f) for f in frames if _is_project(f)}:
            project[name] += count
    if not total:
        return Profile(error="py-spy recorded no samples")
    return Profile(
        samples=total,
        categories={k: v / total for k, v in categories.most_common()},
        project_functions=[(k, v / total) for k, v in project.most_common(12)],
        leaf_functions=[(k, v / total) for k, v in leaves.most_common(12)],
    )


def profile_service(pid: int, *, seconds: float, out: Path) -> Profile:
    """Sample the service with ``py-spy record`` for ``seconds`` and summarise the stacks."""
    # the venv's own py-spy (a dev dependency) even when the venv is not on PATH
    beside = Path(sys.executable).with_name("py-spy")
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if spy is None:
        return Profile(error="py-spy not installed (pip install py-spy)")
    command = [spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds)))]
    command += ["--rate", "100", "--format", "raw", "--output", str(out), "--nonblocking"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not out.exists():
        return Profile(error=(result.stderr or result.stdout).strip()[-500:])
    return summarise_profile(out.read_text())


def ingest_more(
    service: MeasurementProcess,
    *,
    bootstrap: str,
    stream: LeadStream,
    start: int,
    count: int,
    consumed_before: float,
    profile_s: float,
    profile_out: Path,
    timeout_s: float,
) -> tuple[float, Profile | None]:
    """Publish rows ``start … start+count-1`` of ``stream`` and wait until the service consumed
    them and went idle (profiling it meanwhile); return (seconds, profile)."""
    asyncio.run(publish_fast(bootstrap, interleave(stream.messages(start, count), [], every=1)))
    started = time.perf_counter()
    profile = None
    if profile_s > 0:
        profile = profile_service(service.pid, seconds=profile_s, out=profile_out)
    deadline = time.monotonic() + timeout_s
    target = consumed_before + count
    last_batches = -1.0
    while True:
        service.check_alive()
        samples = service.metrics()
        batches = metric(samples, "handler_seconds_count", handler=HANDLER)
        if metric(samples, "messages_in_total", topic=LEADS) >= target and batches == last_batches:
            return time.perf_counter() - started, profile
        last_batches = batches
        if time.monotonic() > deadline:
            raise BenchTimeout(f"{count} more rows not consumed after {timeout_s:.0f} s")
        time.sleep(1.0)


def expected_company_funnel(stream: LeadStream, *, rows: int) -> dict[str, int]:
    """The company funnel after rows ``0 … rows-1`` of ``stream`` (the only leads ingested)."""
    return company_funnel(stream.expected_funnel(0, rows))
