"""Database layer: models, sessions, embedded PostgreSQL, migrations, queries."""

# the alerting, experiment and cluster tables join Base.metadata whenever the db package is imported
# (migrations, truncation in tests)
from db import alerting_models, cluster_models, experiment_models  # noqa: F401
