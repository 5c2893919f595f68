"""An experiment report opened from a file in headless Chromium with the network off: it draws its charts (fault
span, event lines, threshold lines) without a script error or a single request besides the file itself."""

from __future__ import annotations

from pathlib import Path

from engine.experiments.report import render_html
from tests.browser.cdp import Chromium
from tests.engine.experiment_runs import halted_run, passed_run

RECORD_ERRORS = ("window.__errors = [];"
                 "window.addEventListener('error', e => window.__errors.push(String(e.message)));")
DRAWN = """(async () => {
  for (let i = 0; i < 200; i++) {
    const gd = document.getElementById('charts');
    if (gd && gd._fullLayout && document.querySelectorAll('#charts .shapelayer path').length) break;
    await new Promise(r => setTimeout(r, 50));
  }
  const gd = document.getElementById('charts');
  return {errors: window.__errors, paths: document.querySelectorAll('#charts svg path').length,
          shapes: document.querySelectorAll('#charts .shapelayer path').length, layoutShapes: gd.layout.shapes.length,
          traces: document.querySelectorAll('#charts .trace').length,
          annotations: Array.from(document.querySelectorAll('#charts .annotation-text')).map(a => a.textContent),
          verdict: document.getElementById('verdict').textContent,
          online: navigator.onLine};
})()"""


def test_the_report_renders_offline(chromium: Chromium, shots_dir: Path, tmp_path: Path):
    report = tmp_path / "report.html"
    report.write_text(render_html(halted_run(hostile=True), other=passed_run()), encoding="utf-8")
    url = report.as_uri()
    script = chromium.call("Page.addScriptToEvaluateOnNewDocument", source=RECORD_ERRORS)
    try:
        with chromium.recording_requests() as requests:
            chromium.call("Network.emulateNetworkConditions", offline=True, latency=0, downloadThroughput=-1,
                          uploadThroughput=-1)
            chromium.navigate(url)
            drawn = chromium.evaluate(DRAWN)
            chromium.screenshot(shots_dir / "experiment-report.png", height=2600)
    finally:
        chromium.call("Page.removeScriptToEvaluateOnNewDocument", identifier=script["identifier"])
    print(f"experiment report in Chromium: {drawn['paths']} SVG paths, {drawn['shapes']} shapes, "
          f"{drawn['traces']} traces; screenshot {shots_dir / 'experiment-report.png'}")
    assert requests == [url]
    assert drawn["errors"] == [] and drawn["online"] is False
    assert drawn["verdict"] == "FAIL"
    assert drawn["shapes"] == drawn["layoutShapes"] >= 6  # fault band, 4 event lines, threshold lines
    assert drawn["traces"] >= 8 and drawn["paths"] > 40
    # titles are shown as written (cut at 40 characters), the hostile one as text
    assert "fault: network-latency 200 ms on checkout <scr…" in drawn["annotations"]
    assert "halt: halted: p99 < 150 over 3 s <script>aler…" in drawn["annotations"]
