"""The alerting tables live in db.alerting_models but share db.models' metadata: tests' truncation empties them."""

from __future__ import annotations

from sqlalchemy import func, select

from db.alerting_models import AlertRuleRow, IncidentRow, SloMinuteRow
from db.models import Base
from tests.conftest import truncate_all


def test_alerting_tables_are_in_base_metadata():
    names = {t.name for t in Base.metadata.sorted_tables}
    assert {"alert_rules", "alerts", "alert_events", "silences", "alert_channels", "deliveries", "incidents",
            "incident_notes", "slos", "slo_minutes"} <= names
    assert AlertRuleRow.metadata is IncidentRow.metadata is SloMinuteRow.metadata is Base.metadata


def test_truncate_all_empties_the_alerting_tables(sessions, clean_db):
    with sessions.begin() as s:
        s.add(AlertRuleRow(name="cart down", kind="service-down", window_seconds=300, for_seconds=0,
                           severity="critical"))
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(AlertRuleRow)) == 1
    truncate_all(clean_db)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(AlertRuleRow)) == 0
