"""Helpers the tests, the benchmarks and tools/screenshots.py share (importable as ``tests.helpers``)."""
