"""Microservice Monitor engine: registry, health checks, collection, traffic, load tests, chaos, scaling, REST API."""

__all__ = ["VERSION"]

VERSION = "0.2.0"  # the engine's and its REST API's version (OpenAPI info.version, mm_build_info)
