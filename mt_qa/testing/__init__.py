"""Test support: models built on the spot for tests and benchmarks (nothing here runs in a pipeline).

Like ``numpy.testing`` or ``torch.testing`` it ships with the package, so the benchmarks in
``bench/`` (run from a checkout, not from ``tests/``) and the tests import the same builders.
"""
