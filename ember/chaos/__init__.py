"""Chaos testing: scenarios, faults, workloads, histories, checkers and reports."""
