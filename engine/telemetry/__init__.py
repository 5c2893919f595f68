"""The engine's own Prometheus exposition: what it routes, checks, schedules and writes, read at
scrape time from the capabilities that own the figures.
"""
