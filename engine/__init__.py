"""Microservice Monitor engine: registry, health checks, collection, REST API."""
