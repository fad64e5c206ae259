"""The benchmarks at tiny sizes: they run to the end against the real servers and report sane
figures (the timers; the pipeline in quick mode with its like-for-like baseline, a little history
and the closing BENCH_SUMMARY line). No timing is asserted: speed is what `make bench` reports,
not what a test decides."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks import timer_bench
from tests.benchmarks.common import ROOT

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


# ---------- the pipeline in quick mode: like-for-like baseline, history, BENCH_SUMMARY ----------
def _summary_line(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("BENCH_SUMMARY ")]
    assert len(lines) == 1, f"expected one BENCH_SUMMARY line, got {len(lines)}"
    assert stdout.rstrip().splitlines()[-1] == lines[0], "BENCH_SUMMARY must be the last line"
    return json.loads(lines[0][len("BENCH_SUMMARY "):])


@pytest.mark.timeout(900)
def test_quick_pipeline_run_reports_a_like_for_like_baseline_history_and_a_bench_summary_line():
    from tests.benchmarks import report
    from tests.benchmarks.statements import NOT_LOADED

    proc = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.run", "--quick", "--only", "pipeline", "--no-output",
         "--history-scale", "0.002"],
        cwd=ROOT, capture_output=True, text=True, timeout=840)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = _summary_line(proc.stdout)

    # Only the pipeline ran: its keys, and no timer key.
    for key in ("pipeline_rate", "baseline_rate", "like_for_like_rate", "ratio_like_for_like", "cpu_ms_per_complaint"):
        assert sane_rate(summary[key]), (key, summary[key])
    assert "timers_ratio_pgqueuer" not in summary
    assert summary["ratio_like_for_like"] == pytest.approx(summary["pipeline_rate"] / summary["like_for_like_rate"],
                                                            rel=1e-3)
    assert summary["history_scale"] == 0.002
    assert sane_rate(summary["history_rate_ratio"]) and sane_rate(summary["history_cpu_ratio"])

    results_path = re.search(r"results: (\S+results\.json)", proc.stdout)
    assert results_path, "the run names its results file"
    p = json.loads(Path(results_path.group(1)).read_text())["pipeline"]

    # The like-for-like baseline produced what the services produced: the same whole records per
    # complaint on every output topic, of about the same size.
    services, lfl = p["services_outputs"], p["like_for_like_outputs"]
    assert services["helpdesk.complaints.classified.v1"]["records"] == pytest.approx(1.0, abs=0.05)
    assert sum(p["like_for_like_records"].values()) >= 3
    for topic, measured in services.items():
        wanted = round(measured["records"])
        assert lfl[topic]["records"] == pytest.approx(wanted, abs=0.05), topic
        if wanted:
            assert 0.5 < lfl[topic]["bytes"] / measured["bytes"] < 2.0, (topic, lfl[topic], measured)
    assert summary["records_per_complaint"] == p["like_for_like_records"]

    # History: exactly what was asked was seeded, and three runs were compared.
    h = p["history"]
    seeded = h["history"]["seeded"]
    from tests.benchmarks.history import sizes
    expected = sizes(0.002)
    assert (seeded["handled_events"], seeded["cases"], seeded["open_timers"]) == (
        expected["handled_events"], expected["cases"], expected["open_timers"])
    assert all(sane_rate(h[k]["rate"]) for k in ("empty_before", "history", "empty_after"))

    # Statement counts: measured, or n/a with the reason (never a failure).
    if "statements" in p:
        assert summary["statements_per_complaint"] and all(v > 0 for v in summary["statements_per_complaint"].values())
    else:
        assert summary["statements_per_complaint"] is None
        assert p["statements_missing"]
    markdown = "\n".join(report._pipeline(p))
    assert "like-for-like pass-through" in markdown and "### Cost as the data grows" in markdown
    if "statements" not in p and p["statements_missing"] == NOT_LOADED:
        assert f"statement counts: n/a ({NOT_LOADED})" in markdown


def test_history_sizes_scale_the_issue_figures_and_keep_whole_open_cases():
    from tests.benchmarks.history import FULL_YEAR, TIMERS_PER_OPEN_CASE, sizes

    assert sizes(1.0) == FULL_YEAR
    small = sizes(0.01)
    assert small == {"handled_events": 50_000, "cases": 10_000, "open_timers": 1_000}
    assert sizes(0.00001)["open_timers"] % TIMERS_PER_OPEN_CASE == 0
    with pytest.raises(ValueError):
        sizes(0)


def test_statements_are_attributed_to_the_service_whose_schema_they_name():
    from tests.benchmarks.statements import UNATTRIBUTED, Snapshot, per_complaint, service_of

    assert service_of("INSERT INTO sla.timers (key) SELECT unnest($1::text[])") == "sla"
    assert service_of("SELECT 1 FROM followup.cases WHERE case_id = $1") == "followup"
    assert service_of("BEGIN") == UNATTRIBUTED
    assert service_of("SELECT pg_advisory_xact_lock($1)") == UNATTRIBUTED
    before = Snapshot({(1, "INSERT INTO intake.complaints VALUES ($1)"): (10, 5.0)})
    after = Snapshot({(1, "INSERT INTO intake.complaints VALUES ($1)"): (110, 25.0), (2, "COMMIT"): (50, 1.0)})
    counted = per_complaint(before, after, complaints=100)
    assert counted["services"]["intake"] == {"statements": 1.0, "ms": 0.2}
    assert counted["services"][UNATTRIBUTED]["statements"] == 0.5
    assert counted["top"][0]["service"] == "intake"


def test_the_like_for_like_builders_use_the_services_parsers_and_refuse_what_they_refuse():
    from shared.inbound import RejectedInput
    from tests.benchmarks.passthrough import like_for_like_builder
    from tests.benchmarks.pipeline_bench import complaints

    raw = json.dumps(complaints(1, "t")[0]).encode()
    classified = like_for_like_builder("intake")(raw, 1)
    assert len(classified) == 1 and json.loads(classified[0])["type"] == "complaint.classified"
    for role, kind in (("sla", "sla.started"), ("compensation", "compensation.granted"),
                       ("followup", "followup.scheduled")):
        out = like_for_like_builder(role)(classified[0], 3)
        assert [json.loads(v)["type"] for v in out] == [kind] * 3
        assert len({json.loads(v)["event_id"] for v in out}) == 3
    with pytest.raises(RejectedInput):
        like_for_like_builder("intake")(b'{"type": "complaint.received"}', 1)
    with pytest.raises(RejectedInput):
        like_for_like_builder("compensation")(b"not json", 1)


def test_bench_summary_carries_only_the_sections_that_ran():
    from tests.benchmarks import report

    line = report.bench_summary({"timers": {"summary": {"ours": {"rate": 3000.0}, "pgqueuer": {"rate": 200.0}}}})
    assert line.startswith("BENCH_SUMMARY ") and "\n" not in line
    assert json.loads(line[len("BENCH_SUMMARY "):]) == {"timers_ratio_pgqueuer": 15.0}
    no_pgqueuer = report.bench_summary({"timers": {"summary": {"ours": {"rate": 3000.0}}}})
    assert json.loads(no_pgqueuer[len("BENCH_SUMMARY "):]) == {"timers_ratio_pgqueuer": None}
