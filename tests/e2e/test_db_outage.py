"""PostgreSQL stopped for 8 s under a load test: the engine stays up, says so, and loses nothing.

The scenario is bench.db_outage's (the 60 s run is `python -m bench.db_outage`), shortened: its own
embedded PostgreSQL (it must stop it, so DATABASE_URL's server is not used), `python -m engine serve
--demo` as a real process, a load test on orders, a simulation that ends and an inventory process
killed while the database is gone.
"""

from __future__ import annotations

import pytest

from bench.db_outage import Config, Report, print_report, run
from engine.fleet.demo import DEMO_SERVICES
from tests.conftest import free_port_base

pytestmark = pytest.mark.e2e

OUTAGE_S = 8.0


@pytest.fixture(scope="module")
def report() -> Report:
    cfg = Config(outage_s=OUTAGE_S, margin_s=2.0, collect_interval=1.0, health_interval=0.5, poll_s=0.5,
                 rate=100.0, users=10, load_test_s=OUTAGE_S + 5.0, port_base=free_port_base(40), startup_timeout_s=60.0,
                 recovery_timeout_s=30.0)
    lines: list[str] = []
    result = run(cfg, say=lines.append)
    print_report(result, say=lines.append)
    print("\n".join(lines))  # shown by pytest when an assertion fails
    assert result.error is None, "\n".join(lines)
    return result


def test_the_engine_process_stays_up_throughout(report):
    assert report.probes and all(p.engine_alive for p in report.probes)
    assert report.engine_alive_at_end and report.engine_exit == 0
    assert report.engine_tracebacks == 0  # no job crashed on the missing database


def test_health_says_503_database_down_with_a_growing_backlog_while_postgres_is_stopped(report):
    outage = report.during("outage")
    assert len(outage) >= OUTAGE_S / report.config.poll_s - 2
    assert all(p.health == 503 and p.database == "down" for p in outage), [(p.t, p.health) for p in outage]
    assert any(p.database_ok is False for p in outage)
    assert max(p.pending or 0 for p in outage) > 0
    assert (outage[-1].pending or 0) > (outage[0].pending or 0)  # buffered, not written


def test_health_is_200_again_and_the_backlog_is_written_without_a_drop(report):
    after = report.during("recovery")
    assert after and after[-1].health == 200 and after[-1].database == "up" and after[-1].database_ok
    assert after[-1].pending == 0
    assert report.recovery_s is not None and report.recovery_s < 10
    assert report.dropped == 0


def test_routing_and_the_load_test_go_on_during_the_outage(report):
    outage = report.during("outage")
    assert all(p.proxy == 200 for p in outage), [(p.t, p.proxy) for p in outage]
    assert all(p.load_test == 200 for p in outage)  # the live status is served from memory


def test_the_monitor_database_alert_fires_during_the_outage_and_resolves_after(report):
    outage, after = report.during("outage"), report.during("recovery")
    states = [p.db_alert for p in outage]
    assert "firing" in states, states  # evaluated from the engine's memory, listed by /api/alerts from it
    assert states.index("firing") <= 6, states  # within 3 s: the writer's next flush, the next 0.5 s round
    assert after[-1].db_alert == "resolved"


def test_no_metric_bucket_of_the_outage_window_is_missing(report):
    assert sorted(c.service for c in report.coverage) == sorted(DEMO_SERVICES)
    for c in report.coverage:
        assert c.missing == 0 and c.found >= c.expected, c
        assert c.max_gap_s is not None and c.max_gap_s <= 1.5 * report.config.collect_interval, c


def test_every_second_of_the_load_test_has_its_sample(report):
    assert report.load_test_status == "completed"
    assert report.samples_missing == []
    assert report.samples_found >= report.samples_expected


def test_work_that_needed_the_database_catches_up_by_itself(report):
    assert report.simulation_status == "completed"  # it ended mid-outage; its row was written afterwards
    assert report.killed not in (None, "none found")
    assert report.inventory_instances == 2  # the process killed mid-outage was replaced once it could be


def test_the_outage_is_logged_once_per_job_not_per_tick(report):
    logs = report.log_sources_during_outage
    assert sum(logs.values()) <= 12, logs
