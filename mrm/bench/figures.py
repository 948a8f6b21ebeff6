"""From raw measurements to the table's figures, ratios, targets and honest notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mrm.bench.execution import SpendRun
from mrm.bench.ingest import Ingestion, Profile
from mrm.bench.kafka import Counted, DeadLetters, Published
from mrm.bench.model_figures import model_details, model_figures, model_notes
from mrm.bench.models import ModelTimings
from mrm.bench.queries import Inserted, KpiDataset, Latency

GIB = 1024**3
INGEST_RATIO_TARGET = 0.5
FRESHNESS_P99_TARGET_S = 0.5
CAMPAIGN_KPI_TARGET_S = 0.100
PLAN_KPI_TARGET_S = 0.300
RSS_TARGET_BYTES = int(1.5 * GIB)
RSS_TARGET_EVENTS = 10_000_000
EXECUTION_BEHIND_TARGET_S = 5.0
"""Execution keeps up when it ends at most this far behind the spend publisher."""


@dataclass
class Results:
    """Everything one run measured (``None`` for a phase that did not run)."""

    config: Any
    published: Published | None = None
    bare_consumer: Counted | None = None
    bare_insert: Inserted | None = None
    startup_s: float | None = None
    ingestion: Ingestion | None = None
    malformed: int = 0
    dead_letters: DeadLetters | None = None
    dlq_metric: float = 0.0
    freshness: Any = None
    rss_after_ingestion: dict[str, int] = field(default_factory=dict)
    rss_final: dict[str, int] = field(default_factory=dict)
    rss_events: int = 0
    memory_estimate_s: float = 0.0
    extra_ingest_s: float = 0.0
    final_funnel_ok: bool | None = None
    profile: Profile | None = None
    dataset: KpiDataset | None = None
    campaign_latency: Latency | None = None
    plan_latency: Latency | None = None
    execution: SpendRun | None = None
    model_timings: ModelTimings | None = None
    backtest: Any = None
    """``campaign_models.Backtest`` of the synthetic past."""


def _rate(value: float) -> str:
    return f"{value:,.0f}/s"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def _small_ratio(value: float) -> str:
    """Three decimals, or two significant digits below 0.01 (a tiny run's fast consumer would
    round the ratio to 0.000)."""
    return f"{value:.3f}" if value >= 0.01 or value == 0 else f"{value:.2g}"


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


def figures(r: Results) -> list[Any]:
    """The table rows of a run."""
    from mrm.bench.report import Figure

    out: list[Figure] = []
    n = r.config.events
    if r.bare_consumer:
        out.append(Figure(f"raw: bare aiokafka consumer, {n:,} msgs", _rate(r.bare_consumer.rate)))
    if r.bare_insert:
        out.append(
            Figure(
                f"raw: bare insert_arrow into chDB lead_events ({r.config.insert_chunk:,}-row "
                "inserts)",
                _rate(r.bare_insert.rate),
            )
        )
    if r.ingestion and r.bare_consumer:
        ratio = r.ingestion.rate / r.bare_consumer.rate
        out.append(
            Figure(
                f"sustained ingestion, Kafka → queryable ClickHouse rows ({n:,} leads)",
                _rate(r.ingestion.rate),
                raw_limit=f"{_rate(r.bare_consumer.rate)} (bare consumer)",
                ratio=f"{ratio:.2f}",
                target=f"ratio ≥ {INGEST_RATIO_TARGET}",
                met=ratio >= INGEST_RATIO_TARGET and r.ingestion.verified,
            )
        )
        if r.bare_insert:
            out.append(
                Figure(
                    "sustained ingestion vs bare insert",
                    _rate(r.ingestion.rate),
                    raw_limit=f"{_rate(r.bare_insert.rate)} (bare insert)",
                    ratio=f"{r.ingestion.rate / r.bare_insert.rate:.2f}",
                )
            )
    if r.execution is not None:
        out += _execution_figures(r.execution, r.bare_consumer)
    if r.dead_letters is not None:
        found = len(r.dead_letters.found) - len(r.dead_letters.without_reason)
        out.append(
            Figure(
                "malformed messages in the DLQ with x-error",
                f"{found:,} / {r.malformed:,}",
                target="all",
                met=found == r.malformed,
            )
        )
    if r.freshness is not None and r.freshness.latencies_s:
        lat = np.array(r.freshness.latencies_s)
        p50, p99 = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
        label = (
            f"freshness publish → KPI API ({r.freshness.rate:,.0f} spend/s, {len(lat):,} probes)"
        )
        out.append(Figure(label + " p50", _ms(p50)))
        out.append(
            Figure(
                label + " p99",
                _ms(p99),
                target=f"≤ {_ms(FRESHNESS_P99_TARGET_S)}",
                met=p99 <= FRESHNESS_P99_TARGET_S and r.freshness.unresolved == 0,
            )
        )
    if r.campaign_latency and r.dataset:
        size = f"{r.dataset.lead_events:,} lead events"
        for name, latency, target in (
            ("campaign", r.campaign_latency, CAMPAIGN_KPI_TARGET_S),
            ("plan", r.plan_latency, PLAN_KPI_TARGET_S),
        ):
            assert latency is not None
            for q, value in (("p50", latency.p50), ("p99", latency.p99)):
                out.append(
                    Figure(
                        f"{name} KPIs ({'warehouse.' + name + '_kpis'}) {q}, {size}",
                        _ms(value),
                        target=f"≤ {_ms(target)}",
                        met=value <= target,
                    )
                )
    out += model_figures(r)
    if r.rss_final:
        out.append(
            Figure(
                f"measurement RSS after {r.rss_events:,} lead events",
                _gib(r.rss_final["VmRSS"]),
                raw_limit=f"peak {_gib(r.rss_final.get('VmHWM', 0))}",
                target=f"≤ 1.5 GiB after {RSS_TARGET_EVENTS:,}",
                met=(r.rss_final["VmRSS"] <= RSS_TARGET_BYTES)
                if r.rss_events >= RSS_TARGET_EVENTS
                else None,
            )
        )
    return out


def _execution_figures(e: SpendRun, bare: Counted | None) -> list[Any]:
    from mrm.bench.report import Figure

    offered = f"{e.offered_rate:,.0f}/s offered for {e.publish_seconds:.0f} s"
    return [
        Figure(
            f"execution: spend.recorded applied to budgets ({offered}, {e.campaigns} campaigns)",
            _rate(e.rate),
            raw_limit=f"{_rate(bare.rate)} (bare consumer)" if bare else "—",
            ratio=_small_ratio(e.rate / bare.rate) if bare and bare.rate else "—",
            target=f"keeps up (≤ {EXECUTION_BEHIND_TARGET_S:.0f} s behind at the end)",
            met=e.behind_s <= EXECUTION_BEHIND_TARGET_S and e.verified,
        ),
        Figure(
            "execution: behind the spend publisher at the end",
            f"{e.behind_s:,.1f} s" + ("" if e.caught_up_s is not None else " (estimated)"),
        ),
        *(
            [
                Figure(
                    f"execution: a backlog of {e.backlog:,} spend.recorded applied",
                    _rate(e.backlog_rate) if e.backlog_seconds else "not drained",
                    raw_limit=f"{_rate(bare.rate)} (bare consumer)" if bare else "—",
                    ratio=_small_ratio(e.backlog_rate / bare.rate) if bare and bare.rate else "—",
                )
            ]
            if e.backlog
            else []
        ),
    ]


def notes(r: Results) -> list[str]:
    """Why targets are not met (or could not be checked), in plain words."""
    out = []
    c = r.config
    if r.ingestion and r.bare_consumer:
        ratio = r.ingestion.rate / r.bare_consumer.rate
        if ratio < INGEST_RATIO_TARGET:
            out.append(
                f"- **Ingestion ratio {ratio:.2f} < {INGEST_RATIO_TARGET}.** The bare consumer "
                f"reads {r.bare_consumer.rate:,.0f} msgs/s and chDB takes "
                f"{r.bare_insert.rate if r.bare_insert else 0:,.0f} rows/s, but the service "
                f"makes {r.ingestion.rate:,.0f} rows/s queryable. A batch is parsed whole by "
                "pyarrow.json, checked with pyarrow.compute and inserted as one Arrow table, "
                "so what is left per message is aiokafka's record objects (the bare consumer "
                "pays those too) and collecting their values and offsets; the rest is the "
                "insert with its materialized view, the commit, and sharing two cores with the "
                "broker, chDB's background merges and the benchmark; see the profile."
                + _profile_headline(r.profile)
            )
    e = r.execution
    if e is not None and not (e.behind_s <= EXECUTION_BEHIND_TARGET_S and e.verified):
        out.append(
            f"- **Execution applied {e.rate:,.0f} spend events/s of {e.offered_rate:,.0f} "
            f"offered and ended {e.behind_s:,.1f} s behind**"
            + (
                ""
                if e.caught_up_s is not None
                else " (estimated: it had not caught up when the benchmark stopped waiting)"
            )
            + f"; spend exact to the cent: {'yes' if e.spend_exact else 'no'}; threshold events "
            f"(80 %, 100 %): {e.threshold_events.get(80, 0)}, {e.threshold_events.get(100, 0)} "
            f"for {e.campaigns} campaigns."
        )
    if r.dead_letters is not None and len(r.dead_letters.found) < r.malformed:
        out.append(
            f"- **DLQ: {r.malformed - len(r.dead_letters.found)} malformed messages were not "
            "found in the dead-letter topics.**"
        )
    f = r.freshness
    if f is not None and f.latencies_s:
        p99 = float(np.percentile(f.latencies_s, 99))
        if p99 > FRESHNESS_P99_TARGET_S or f.unresolved:
            out.append(
                f"- **Freshness p99 {p99 * 1000:,.0f} ms > {FRESHNESS_P99_TARGET_S * 1000:.0f} "
                f"ms** ({f.unresolved} probes never seen). A KPI request itself took "
                f"{np.median(f.poll_seconds) * 1000:,.0f} ms (median) while ingesting: the "
                "probe waits for its batch to fill (batch timeout), be decoded and inserted, "
                "and for a reader while the service shares two cores with the broker and the "
                "benchmark — the benchmark's own polls included (`--poll-interval` trades "
                "their load against resolution)."
            )
        if f.rate < c.freshness_rate * 0.95:
            out.append(
                f"- The freshness publisher reached {f.rate:,.0f} events/s of the "
                f"{c.freshness_rate:,.0f} asked (the benchmark shares the CPUs with the service)."
            )
    for name, lat, target in (
        ("campaign", r.campaign_latency, CAMPAIGN_KPI_TARGET_S),
        ("plan", r.plan_latency, PLAN_KPI_TARGET_S),
    ):
        if lat is not None and (lat.p99 > target or lat.p50 > target):
            out.append(
                f"- **{name.capitalize()} KPIs p50 {lat.p50 * 1000:,.0f} ms / p99 "
                f"{lat.p99 * 1000:,.0f} ms > {target * 1000:.0f} ms.** A call is "
                f"{'one query' if name == 'campaign' else 'two queries'} (every stream a "
                "UNION ALL branch, run in parallel); what costs is exact distinct counting — "
                "the scope's leads regrouped from the lead_funnel pre-aggregate (read with "
                "FINAL, so unmerged parts cost more) and the customer cohorts, which read every "
                "sale of the scope's customers — on two cores shared with the benchmark."
            )
    out += model_notes(r)
    if r.rss_final and r.rss_events < RSS_TARGET_EVENTS and c.memory_events <= c.events:
        out.append(
            f"- **Memory measured after {r.rss_events:,} lead events, not "
            f"{RSS_TARGET_EVENTS:,}** (`--memory-events {c.memory_events}`): RSS was "
            f"{_gib(r.rss_final['VmRSS'])}; the target is not verified by this run."
        )
    elif r.rss_final and r.rss_events < RSS_TARGET_EVENTS:
        out.append(
            f"- **Memory measured after {r.rss_events:,} lead events, not "
            f"{RSS_TARGET_EVENTS:,}**: at the measured ingestion rate the remaining "
            f"{max(0, c.memory_events - c.events):,} events would have taken "
            f"~{r.memory_estimate_s / 60:,.1f} min (budget {c.memory_budget_s / 60:.1f} min). "
            f"RSS was {_gib(r.rss_final['VmRSS'])} (peak {_gib(r.rss_final.get('VmHWM', 0))}); "
            "the target is not verified by this run."
        )
    elif r.rss_final and r.rss_final["VmRSS"] > RSS_TARGET_BYTES:
        out.append(f"- **RSS {_gib(r.rss_final['VmRSS'])} > 1.5 GiB.**")
    if r.final_funnel_ok is False:
        out.append("- The funnel after the extra events did not match the expected counts.")
    return out


def _profile_headline(profile: Profile | None) -> str:
    if profile is None or profile.error or not profile.categories:
        return ""
    top = ", ".join(f"{name} {share:.0%}" for name, share in list(profile.categories.items())[:4])
    return f" py-spy: {top}."


def details(r: Results) -> list[str]:
    """How each figure was taken, with the run's own numbers."""
    c = r.config
    out = []
    if r.published:
        out.append(
            f"- Backlog: {r.published.messages:,} messages (lead.stage_changed envelopes of "
            "~320 B, built once per template with `new_envelope(...).to_bytes()`, ids "
            f"substituted; ~{c.malformed_ratio:.1%} malformed mixed in, every tenth on "
            f"`mrm.spend.v1`) pre-published with aiokafka `send_batch` at "
            f"{r.published.rate:,.0f} msgs/s into a fresh embedded Tansu broker "
            f"({c.partitions} partitions per topic)."
        )
    if r.bare_consumer:
        out.append(
            f"- Bare consumer: aiokafka, no group, partitions assigned, `getmany` counting "
            f"{r.bare_consumer.messages:,} messages of `mrm.leads.v1` in "
            f"{r.bare_consumer.seconds:.1f} s."
        )
    if r.bare_insert:
        out.append(
            f"- Bare insert: the same {r.bare_insert.rows:,} rows as Arrow tables (built "
            "beforehand) in measurement's `lead_events` layout (its migrations), "
            f"clickhouse-connect `insert_arrow` into chDB, {c.insert_chunk:,} rows per insert "
            f"(the service's default batch), {r.bare_insert.seconds:.1f} s."
        )
    if r.ingestion:
        out.append(
            f"- Sustained ingestion: `python -m services.measurement` as a child process (own "
            f"data dir and chDB path, group `mrm-measurement` new to this broker), ready after "
            f"{r.startup_s or 0:.1f} s; first batch durable {r.ingestion.first_visible_s:.1f} s "
            f"later (`mrm_handler_seconds_count{{service=…}}` on /metrics, polled every 0.1 s); "
            f"last row = the company funnel (`GET /api/v1/funnel`) equal to the expected stage "
            f"counts of all {r.ingestion.rows:,} leads, {r.ingestion.seconds:.1f} s after the "
            "first batch. Rate = rows / that time."
        )
    if r.execution is not None:
        e = r.execution
        out.append(
            f"- Execution: `python -m services.execution` as a child process (SQLite in its own "
            f"data dir) on a fresh embedded broker; {e.campaigns} campaigns planned, then "
            f"{e.events:,} spend.recorded of 1.00 published at {e.offered_rate:,.0f}/s in "
            f"{e.publish_seconds:.1f} s (aiokafka, paced every 5 ms), {e.duplicates:,} of them "
            "sent twice with the same event_id; budgets at 90 % of each campaign's spend, so "
            "every campaign crosses 80 % and 100 % during the run. Applied spend sampled through "
            f"`GET /api/v1/campaigns` every {e.sample_every_s:g} s; rate = events applied / (last "
            "applied − first publish); behind = last applied − last publish. "
            + (
                f"Then {e.backlog:,} more were published at once (`send_batch`) and timed from "
                "the first publish until all were applied (polled every 0.5 s): the service's "
                "capacity, comparable with the bare consumer. "
                if e.backlog
                else ""
            )
            + "Finally every campaign's spend was "
            f"compared to the cent ({'equal' if e.spend_exact else 'NOT equal'}) and "
            "`budget.threshold_crossed` counted on `mrm.execution.v1` by distinct event_id "
            f"(80 %: {e.threshold_events.get(80, 0)}, 100 %: {e.threshold_events.get(100, 0)})."
        )
    if r.dead_letters is not None:
        reasons = "; ".join(f"{k}: `{v[:90]}`" for k, v in sorted(r.dead_letters.reasons.items()))
        out.append(
            f"- DLQ: read `mrm.leads.v1.dlq` and `mrm.spend.v1.dlq` from the start, matched by "
            f"a marker per malformed message; {len(r.dead_letters.found):,} of {r.malformed:,} "
            f"found, {len(r.dead_letters.without_reason)} without `x-error`; the service's "
            f"dead-letter counter says {r.dlq_metric:,.0f}. Sample reasons: {reasons}."
        )
    f = r.freshness
    if f is not None:
        polls = np.median(f.poll_seconds) * 1000 if f.poll_seconds else 0
        out.append(
            f"- Freshness: {f.events:,} spend.recorded in {f.publish_seconds:.1f} s "
            f"(aiokafka, linger 0, paced every 5 ms); every {c.probe_every}th is a probe of "
            f"1.00 on one of {c.probe_campaigns} planned probe campaigns; one poller per "
            f"campaign calls `GET /api/v1/kpis/campaigns/{{id}}` every "
            f"{c.poll_interval_s * 1000:.0f} ms while it has probes in flight and resolves all "
            f"probes its `spend` covers; latency = response time − publish call. "
            f"{f.polls:,} polls, median KPI request {polls:,.0f} ms (included in the latency), "
            f"{f.unresolved} probes unresolved."
        )
    if r.dataset:
        out.append(
            f"- KPI queries: in the benchmark's own chDB, measurement's migrations, "
            f"{r.dataset.lead_events:,} lead events (3 per lead) over "
            f"{len(r.dataset.campaign_ids)} campaigns in {len(r.dataset.plan_ids)} plans, plus "
            f"{r.dataset.side_rows:,} rows each of spend, ad metrics and sales, KPI targets; "
            f"inserted with `insert_arrow` and merged (`OPTIMIZE … FINAL`) in "
            f"{r.dataset.seconds:.0f} s. `warehouse.campaign_kpis` / `warehouse.plan_kpis` "
            f"called directly (no HTTP) {c.query_calls} times each over the whole history, "
            "cycling through the campaigns / plans after a warm-up."
        )
    out += model_details(r)
    if r.rss_final:
        after = r.rss_after_ingestion.get("VmRSS", 0)
        out.append(
            f"- Memory: VmRSS / VmHWM of the service from /proc/<pid>/status; "
            f"{_gib(after)} after the first {c.events:,} leads, "
            f"{_gib(r.rss_final['VmRSS'])} after {r.rss_events:,} leads and the freshness run."
        )
    return out


def profile_lines(r: Results) -> list[str]:
    """The py-spy summary for BENCHMARKS.md."""
    p = r.profile
    if p is None:
        return []
    if p.error:
        return [f"- py-spy failed: {p.error}"]
    out = [
        f"py-spy sampled the service at 100 Hz while it ingested the extra lead events "
        f"({p.samples:,} non-idle samples over all threads). Share of samples whose stack "
        "contains:",
        "",
        "| where | share |",
        "|---|---|",
        *(f"| {name} | {share:.0%} |" for name, share in p.categories.items()),
        "",
        "The project's own functions (inclusive share):",
        "",
        "| function | share |",
        "|---|---|",
        *(f"| `{name}` | {share:.0%} |" for name, share in p.project_functions),
        "",
        "Innermost Python frames (self share; native code is charged to its caller):",
        "",
        "| function | share |",
        "|---|---|",
        *(f"| `{name}` | {share:.0%} |" for name, share in p.leaf_functions),
    ]
    return out
