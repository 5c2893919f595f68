"""Alerting: rules evaluated from the engine's live state, alerts with Prometheus' pending → firing → resolved
semantics, silences, notifications over channels with recorded and retried deliveries, incidents and SLOs.

It owns the alert rules, silences, channels, deliveries, incidents and SLOs, and the in-memory state of every
alert. It reads the registry, health, breakers, routed traffic and the writer's database state; it writes only
through the batch writer (evaluation and delivery go on while the database is away) and, for what the API
changes, through the sessions the API hands it.
"""
