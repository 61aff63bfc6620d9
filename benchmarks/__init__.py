"""Benchmarks of the tap against the project's fake Klaviyo: ``python -m benchmarks.events --help``."""
