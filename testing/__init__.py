"""Helpers for the tests and benchmarks only: synthetic runs and a tiny encoder. Not part of the installed
package (pyproject.toml installs ``alchemy_tune`` alone); importable from the repository root, which pytest
puts on ``sys.path`` (``pythonpath`` in pyproject.toml) and the benchmark scripts add themselves."""
