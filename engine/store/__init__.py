"""Writing to PostgreSQL from the engine: the bounded batch writer, the database log handler, outage
bookkeeping and partition maintenance (create ahead, drop past retention).
"""
