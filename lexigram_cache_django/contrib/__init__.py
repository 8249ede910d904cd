"""Integrations with other packages and operators' tools: health checks, Prometheus.

Leaves of the layer table: they import the package, nothing in the package imports them.
Each module that needs a third-party package says so in its docstring (and extra).
"""
