"""Experiments: a stored document of load stages, a fault and scaling schedule, thresholds and steady-state probes;
its runs, verdicts, reports and comparisons."""
