"""The timer benchmark at tiny sizes: it runs to the end against the real servers and reports sane
figures. No timing is asserted: speed is what `make bench` reports, not what a test decides."""
from __future__ import annotations

import math

import pytest

from tests.benchmarks import timer_bench

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
pytest.importorskip("pgqueuer", reason="the bench extra is not installed: pip install -e '.[bench]'")
pytest.importorskip("procrastinate", reason="the bench extra is not installed: pip install -e '.[bench]'")


def sane_rate(value: float) -> bool:
    return math.isfinite(value) and value > 0


async def test_timer_benchmark_fires_every_timer_once_in_each_system_and_reports_sane_figures(servers):
    settings = timer_bench.TimerSettings(count=1_500, window=1.0, repeats=1, procrastinate_count=200,
                                         million=3_000, million_due=300)
    trials = await timer_bench.compare(servers, settings)
    summary = timer_bench.summarize(trials)

    assert set(summary) == {"ours", "pgqueuer", "procrastinate"}
    for system, runs in trials.items():
        for trial in runs:
            assert trial.fired == trial.armed, f"{system} fired {trial.fired} of {trial.armed}"
            assert trial.exactly_once, f"{system} wrote a different number of events than timers"
            assert sane_rate(trial.rate) and sane_rate(trial.armed / trial.arm_seconds)
            assert -0.5 <= trial.lag_p50 <= trial.lag_p99 <= trial.lag_max, system
            assert trial.rss_mib > 10

    million = await timer_bench.million(servers, settings)
    assert million.fired_armed == million.due
    assert million.rss_armed_mib > 10 and million.rss_idle_mib > 10
    assert -0.5 <= million.lag_armed_p50 <= million.lag_armed_p99
