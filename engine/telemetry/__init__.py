"""The engine's own Prometheus exposition: what it routes, checks, schedules and writes, read at
scrape time from the capabilities that own the figures.

May import every capability below the runtime (it reads them); nothing but the runtime and the API imports it.
"""
