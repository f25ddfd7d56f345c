"""Builders of tiny checkpoints (in the real on-disk layouts) and reference models.

Used by the tests, the benchmarks and the demo; nothing here is needed to probe a real encoder.
"""
