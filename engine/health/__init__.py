"""Instance health and metrics collection: the periodic health checker with its damping thresholds and
the collector that rolls routed traffic and scraped process metrics into time buckets.
"""
