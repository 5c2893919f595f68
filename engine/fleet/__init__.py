"""The fleet: the in-memory registry of services and instances, managed instance processes (start,
drain, supervise), and the demo services the engine can launch.
"""
