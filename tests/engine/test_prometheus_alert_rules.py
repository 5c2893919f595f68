"""docs/prometheus-alerts.yml: every metric it reads is one the engine exports, and (where promtool is installed)
it is valid and each rule fires exactly where its unit test says."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.fleet.registry import InstanceSpec, ServiceSpec

DOCS = Path(__file__).resolve().parents[2] / "docs"
RULES = DOCS / "prometheus-alerts.yml"


def test_every_metric_the_rules_read_is_exported(runtime):
    runtime.registry.replace((ServiceSpec(1, "orders", "/health", None, 1, False,
                                          (InstanceSpec(11, 1, "http://127.0.0.1:7001"),)),))
    runtime.traffic.begin("orders")
    runtime.traffic.record("orders", 3.0, False)
    exported = {s.name for f in text_string_to_metric_families(runtime.telemetry.render().decode())
                for s in f.samples}
    wanted = set(re.findall(r"\bmm_[a-z_]+", RULES.read_text()))
    assert len(wanted) >= 6
    assert sorted(wanted - exported) == []


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (apt-get install prometheus)")
def test_promtool_checks_the_rules_and_runs_their_unit_tests():
    promtool = shutil.which("promtool")
    assert promtool is not None
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert check.returncode == 0 and "SUCCESS: 8 rules found" in check.stdout, check.stdout + check.stderr
    tested = subprocess.run([promtool, "test", "rules", "prometheus-alerts.test.yml"], cwd=DOCS,
                            capture_output=True, text=True, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
