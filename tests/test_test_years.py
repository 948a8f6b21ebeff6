"""Test files that write their data into a year of their own (``Y = <year>``) must not share it:
the files of a pytest worker share one chDB engine, and a query over "all sales of May" sees
another file's rows of that year (two files on one year failed that way once)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent
OWN_PROCESS = {"measurement/cluster_probe.py"}
"""Run in a process (and a chDB engine) of their own."""


def test_no_two_test_files_write_the_same_year() -> None:
    years: dict[int, list[str]] = defaultdict(list)
    for path in sorted(TESTS.rglob("*.py")):
        name = path.relative_to(TESTS).as_posix()
        if name in OWN_PROCESS:
            continue
        for match in re.finditer(r"^Y = (\d{4})\b", path.read_text(), re.MULTILINE):
            years[int(match[1])].append(name)
    assert len(years) >= 10  # the scan finds the files it is about
    shared = {year: names for year, names in years.items() if len(names) > 1}
    assert not shared, f"pick a year no other test file uses: {shared}"
