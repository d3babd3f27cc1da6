"""Benchmarks: render, template suite, and the rendered service under load; see __main__."""
