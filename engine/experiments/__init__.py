"""Experiments: a load shape, a schedule of faults and scaling steps, thresholds and steady-state probes, run as one.

checks (the document against the live fleet and the engine's bounds), steady (steady-state probes), runner
(ExperimentManager: one run at a time, its phases, auto-halt, timeline), thresholds (ThresholdBook, per-second
figures), report (the HTML report), compare (two runs side by side), cli (`python -m engine experiment run FILE`).
"""
