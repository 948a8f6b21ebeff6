"""``mrm bench``: the SPEC §7 performance figures, measured in one run on the embedded stack.

See :mod:`mrm.bench.runner` for the phases and ``BENCHMARKS.md`` for the last full run.
"""

from mrm.bench.runner import BenchConfig, run

__all__ = ["BenchConfig", "run"]
