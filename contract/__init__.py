"""The typed contract: everything that crosses a boundary between the engine, the database layer, the
dashboard and API clients.

Pydantic request and response models (camelCase aliases), state enums, roles, the values the engine hands the
batch writer, and the root of the error tree. It imports nothing of ours that runs.
"""
