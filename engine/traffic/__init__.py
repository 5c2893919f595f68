"""The traffic plane: the load balancer, circuit breakers, outlier ejection, retries under a budget, the
router that sends a request through all of them, the in-flight recorder and the outbound HTTP client.

May import contract, db and engine.clock; not the API, the runtime or other capabilities (faults are injected
through a protocol).
"""
