"""Backends: pure, deterministic functions from a checked compilation to text files."""
