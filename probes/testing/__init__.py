"""Builders of tiny checkpoints and tiny datasets (in the real on-disk layouts), reference models, launchers.

Used by the tests, the benchmarks and the demo; nothing here is needed to probe a real encoder.
"""
