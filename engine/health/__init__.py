"""Instance health and metrics collection: the periodic health checker with its damping thresholds and
the collector that rolls routed traffic and scraped process metrics into time buckets.

May import traffic (the routed counters), chaos (injected faults), fleet (the registry), store and clock.
"""
