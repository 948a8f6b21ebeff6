"""Smoke tests of the benchmark harness (``mrm bench``) at tiny sizes.

They check that every phase runs and yields sane numbers and a complete report, never how
fast anything is: timings on a shared test machine assert nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mrm.bench.data import LeadStream, company_funnel, interleave, malformed_messages
from mrm.bench.execution import SpendRun
from mrm.bench.figures import Results, figures, notes
from mrm.bench.ingest import Ingestion, summarise_profile
from mrm.bench.kafka import Counted, count_messages, publish_fast, scan_dead_letters
from mrm.bench.queries import Inserted, Latency
from mrm.bench.runner import BenchConfig
from services.measurement import warehouse
from shared.events import EventRejected, decode
from shared.kafka import ensure_topics
from shared.topics import LEADS, SPEND


def test_lead_stream_messages_are_valid_envelopes_matching_the_arrow_rows() -> None:
    stream = LeadStream(run="0badcafe", campaigns=3, partitions=3)
    messages = list(stream.messages(0, 14))
    table = stream.arrow(0, 14)

    assert table.column_names == list(warehouse.COLUMNS["lead_events"])
    for i, (partition, key, value) in enumerate(messages):
        envelope, data = decode(value, topic=LEADS)
        row = table.slice(i, 1).to_pylist()[0]
        assert str(envelope.event_id) == row["event_id"]
        assert (data.lead_id, data.campaign_id, data.stage) == (
            row["lead_id"],
            row["campaign_id"],
            row["stage"],
        )
        assert key.decode() == data.lead_id and partition == row["_partition"]
        assert (data.customer_id or "") == row["customer_id"]
        assert 250 <= len(value) <= 400  # ~320 B like the reference events


def test_expected_funnel_counts_each_lead_at_its_highest_stage() -> None:
    stream = LeadStream(run="0badcafe", campaigns=2, events_per_lead=3)
    funnel = company_funnel(stream.expected_funnel(0, 30))  # 10 leads
    assert funnel["visitor"] == 10
    assert list(funnel.values()) == sorted(funnel.values(), reverse=True)
    assert funnel["customer"] >= 1


def test_malformed_messages_are_all_rejected_by_the_contract() -> None:
    bad = malformed_messages("0badcafe", 20)
    assert {m.kind for m in bad} == {"bad_json", "unknown_type", "missing_field", "out_of_range"}
    assert {m.topic for m in bad} == {LEADS, SPEND}
    for message in bad:
        with pytest.raises(EventRejected):
            decode(message.value, topic=message.topic)
    mixed = list(interleave(iter([(0, b"k", b"v")] * 10), bad[:3], every=4))
    assert len(mixed) == 13 and sum(1 for m in mixed if m[1] is None) == 3


def test_profile_summary_groups_stacks_by_where_the_time_goes() -> None:
    raw = textwrap.dedent(
        """\
        main (x.py:1);decode (shared/events/registry.py:60);validate (pydantic/main.py:9) 30
        main (x.py:1);Warehouse._locked (services/measurement/warehouse/client.py:7);insert_events (services/measurement/warehouse/writes.py:3) 10
        main (x.py:1);poll (asyncio/base.py:2) 10
        """  # noqa: E501
    )
    profile = summarise_profile(raw)
    assert profile.samples == 50
    assert profile.categories["envelope decode + validation (json + pydantic)"] == 0.6
    assert profile.categories["ClickHouse insert (clickhouse-connect + chDB)"] == 0.2
    assert ("validate (pydantic/main.py)", 0.6) in profile.leaf_functions


def test_figures_compute_ratios_and_verdicts() -> None:
    results = Results(config=BenchConfig(events=1000))
    results.bare_consumer = Counted(messages=1000, seconds=0.01)  # 100,000/s
    results.bare_insert = Inserted(rows=1000, seconds=0.005)
    results.ingestion = Ingestion(rows=1000, first_visible_s=0.1, seconds=0.1, verified=True)
    results.campaign_latency = Latency([0.01] * 10)
    results.plan_latency = Latency([0.5] * 10)
    rows = {f.name: f for f in figures(results)}
    ingestion = next(f for name, f in rows.items() if name.startswith("sustained ingestion,"))
    assert ingestion.ratio == "0.10" and ingestion.met is False
    assert any("Ingestion ratio 0.10" in note for note in notes(results))


def test_execution_figures_say_how_far_behind_it_ended_and_whether_it_was_exact() -> None:
    results = Results(config=BenchConfig(events=1000))
    results.bare_consumer = Counted(messages=1000, seconds=0.01)  # 100,000/s
    kept_up = SpendRun(offered_rate=1000, campaigns=2, sample_every_s=1, events=10_000)
    kept_up.publish_seconds, kept_up.caught_up_s = 10.0, 0.5
    kept_up.samples = [(5.0, 4_000), (10.5, 10_000)]
    kept_up.spend_exact, kept_up.threshold_events = True, {80: 2, 100: 2}
    results.execution = kept_up
    rows = {f.name: f for f in figures(results)}
    applied = next(f for name, f in rows.items() if name.startswith("execution: spend"))
    assert (applied.value, applied.ratio, applied.met) == ("952/s", "0.0095", True)
    assert rows["execution: behind the spend publisher at the end"].value == "0.5 s"
    assert not any("Execution applied" in note for note in notes(results))

    behind = SpendRun(offered_rate=1000, campaigns=2, sample_every_s=1, events=10_000)
    behind.publish_seconds = 10.0
    behind.samples = [(10.0, 2_000), (20.0, 4_000)]  # 200/s, 6,000 left after 10 s waiting
    results.execution = behind
    rows = {f.name: f for f in figures(results)}
    assert rows["execution: behind the spend publisher at the end"].value == "40.0 s (estimated)"
    assert next(f for n, f in rows.items() if n.startswith("execution: spend")).met is False
    assert any("Execution applied 200 spend events/s" in note for note in notes(results))


@pytest.mark.integration
async def test_publish_count_and_dead_letter_scan_on_a_real_broker(
    kafka_bootstrap: str, unique_id: str
) -> None:
    topic = f"bench-smoke-{unique_id}"
    ensure_topics(kafka_bootstrap, [topic], partitions=3)
    published = await publish_fast(
        kafka_bootstrap, ((topic, i % 3, b"k", b"x" * 300) for i in range(3000))
    )
    counted = await count_messages(kafka_bootstrap, topic, expect=3000, timeout_s=60)
    assert published.messages == 3000 and counted.messages == 3000
    assert counted.rate > 0 and published.rate > 0

    missing = await scan_dead_letters(
        kafka_bootstrap, [f"{LEADS}.dlq"], markers={f"bad-{unique_id}-x": "none"}, timeout_s=2
    )
    assert missing.found == set()


SCRIPT = """
import dataclasses, json, sys
from pathlib import Path
from mrm.bench import BenchConfig, run
out = Path(sys.argv[1])
config = BenchConfig(
    events=3000, query_events=6000, freshness_rate=300, freshness_seconds=2, probe_every=10,
    probe_campaigns=2, query_calls=3, campaigns=4, plans=2, memory_events=0, profile_events=0,
    profile_seconds=0, execution_rate=300, execution_seconds=2, execution_campaigns=3,
    execution_backlog=600, history_campaigns=24,
    output=out / "BENCHMARKS.md", work_dir=out / "work",
)
report = run(config, command="mrm bench (smoke)")
(out / "figures.json").write_text(json.dumps([dataclasses.asdict(f) for f in report.figures]))
"""


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_tiny_full_run_writes_a_complete_report(tmp_path: Path) -> None:
    # a child process: chDB allows one engine path per process, and the harness opens its own
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {row["name"]: row for row in json.loads((tmp_path / "figures.json").read_text())}

    def row(prefix: str) -> dict:
        return next(r for name, r in rows.items() if name.startswith(prefix))

    assert row("raw: bare aiokafka consumer")["value"].endswith("/s")
    assert row("raw: bare insert_arrow")["value"].endswith("/s")
    ingestion = row("sustained ingestion, Kafka")
    assert float(ingestion["ratio"]) > 0
    assert row("malformed messages in the DLQ")["value"] == "3 / 3"
    assert row("malformed messages in the DLQ")["met"] is True
    assert row("freshness publish → KPI API")["value"].endswith(" ms")
    for prefix in ("campaign KPIs", "plan KPIs", "campaign model, new", "campaign model, known"):
        assert row(prefix)["value"].endswith(" ms")
    model_p99 = [r for n, r in rows.items() if n.startswith("campaign model") and " p99," in n]
    assert len(model_p99) == 2 and all(r["target"] == "≤ 300 ms" for r in model_p99)
    assert row("measurement RSS")["value"].endswith(" GiB")
    execution = row("execution: spend.recorded applied")
    assert execution["value"].endswith("/s") and float(execution["ratio"]) > 0
    assert execution["met"] is not None
    backlog = row("execution: a backlog of 600 spend.recorded applied")
    assert backlog["value"].endswith("/s") and float(backlog["ratio"]) > 0
    assert "(80 %: 3, 100 %: 3)" in (tmp_path / "BENCHMARKS.md").read_text()
    report = (tmp_path / "BENCHMARKS.md").read_text()
    for heading in ("## Run", "## Results", "## How each figure is measured", "nproc", "cpu"):
        assert heading in report
    backtest = report.split("## Campaign model backtest", 1)[1].split("\n## ", 1)[0]
    assert "24 campaigns over by then" in backtest and "synthetic" in backtest
    assert "| leads | " in backtest and "| gross_profit | " in backtest
