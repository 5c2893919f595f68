"""Scaling: manual scale-up/down of managed services and the autoscaler (the HPA rule with
stabilization windows), with every decision recorded.
"""
