"""Benchmarks: run by hand, never by `make test`."""
