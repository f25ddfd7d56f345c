"""ImageNet classification probes: datasets and label rules, heads, one-pass head sweeps, feature cache.

Submodules are imported on demand so that `probes --help` stays cheap.
"""
