"""Instance health and metrics collection: the periodic health checker with its damping thresholds, the
health history it keeps (per-minute check counts, state changes, the latest results in memory), and the
collector that rolls routed traffic and scraped process metrics into time buckets; checks and scrapes go out on
the traffic plane's HTTP client (`probe.py`: the checks' fetch and the failure texts).

May import traffic (the routed counters, the HTTP client), chaos (injected faults), fleet (the registry), store
and clock.
"""
