"""Database layer: models, sessions, embedded PostgreSQL, migrations, queries."""
