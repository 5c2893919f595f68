"""Locust's fastest closed-model client for bench.loadgen_vs_locust: FastHttpUser, GET /, no wait between requests."""

# mypy: allow-subclassing-any, allow-untyped-decorators
# (locust is a bench-only dependency: `make lint` in CI runs without it, where its names are Any)

from __future__ import annotations

from locust import FastHttpUser, task  # type: ignore[import-not-found, unused-ignore]


class Hammer(FastHttpUser):
    """One user: GET / back to back on its keep-alive connection (no wait_time: the next request follows the answer)."""

    @task
    def root(self) -> None:
        """The only task."""
        self.client.get("/")
