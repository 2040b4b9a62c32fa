"""Ember's local benchmarks; run them with ``python -m bench`` (see ``docs/benchmarks.md``)."""
