"""Dashboard building blocks: database sessions, the REST API client, charts and formatting."""
