"""Failure simulations: faults injected in the outbound path (failure, latency), database overload and
memory leaks as real pressure, and the manager that starts, expires and stops them.
"""
