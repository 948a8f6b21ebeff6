"""``mrm bench`` rewrites BENCHMARKS.md: its own sections anew, the sections other benchmark
scripts wrote (``KEPT_MARK`` in the heading) kept as they were."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mrm.bench.report import KEPT_MARK, Figure, Report, kept_sections, markdown

ROOT = Path(__file__).resolve().parents[2]

PREVIOUS = f"""# Benchmarks

## Results

| old table |

## Segment sizes over time {KEPT_MARK}

- sizes: 56.1 s

## Campaign model backtest

- old backtest
"""


def test_a_run_keeps_the_sections_other_scripts_wrote_and_replaces_its_own() -> None:
    report = Report(
        command="mrm bench",
        started=dt.datetime(2026, 12, 3, tzinfo=dt.UTC),
        figures=[Figure(name="ingestion", value="1 event/s")],
        backtest=["- new backtest"],
    )
    text = markdown(report, machine_info={"nproc": "2"}, previous=PREVIOUS)
    assert "| old table |" not in text and "- old backtest" not in text
    assert "- new backtest" in text and "ingestion" in text
    assert text.count("## Segment sizes over time") == 1
    assert text.rstrip().endswith("- sizes: 56.1 s")
    # nothing to keep: the run's own sections only
    assert KEPT_MARK not in markdown(report, machine_info={}, previous="")


def test_the_committed_file_has_the_segment_sizes_section_a_run_keeps() -> None:
    kept = kept_sections((ROOT / "BENCHMARKS.md").read_text())
    assert kept and kept[0].startswith("## Segment sizes over time")
    assert any("mrm.bench.segment_sizes" in line for line in kept)
