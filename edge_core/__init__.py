"""What every layer of the gateway shares: the error hierarchy, the signal types, one backoff
policy and one helper for background tasks.

This package is the bottom of the import graph: it imports nothing from the project, so
``edge_config``, ``drivers``, ``vision``, ``anomaly`` and ``gateway`` can all use it without a
cycle (``tests/test_layers.py`` keeps it so).
"""
