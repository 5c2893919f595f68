"""Load tests: the open-model generator, its HDR latency histograms, worker processes for high rates,
and the manager that runs one test at a time and records it.
"""
