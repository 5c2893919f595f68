"""The traffic plane: the load balancer, circuit breakers, outlier ejection, retries under a budget, the
router that sends a request through all of them, the in-flight recorder with its rolling window (what the
alert rules read) and the outbound HTTP client.

May import contract, db, the fleet's registry, the store (breaker transitions are written) and the chaos fault
layer's types (the router asks the injected fault layer what to do to a call); never the API or the runtime.
"""
