"""The engine's PostgreSQL: opening and migrating the database, the bounded batch writer, the database log
handler, outage bookkeeping and partition maintenance (create ahead, drop past retention).

A low layer: imports db, contract and clock only; every capability above may write through it.
"""
