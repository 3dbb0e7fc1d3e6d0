"""The replication engine: dialect-free core, one folder per database dialect, and the Airflow edge.

Layers import downward only: ``dialects`` imports ``core``; ``airflow`` imports ``core`` and
``dialects``; ``core`` imports neither (tests/unit/test_layers.py enforces it).
"""
