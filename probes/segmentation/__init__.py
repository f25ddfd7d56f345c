"""Segmentation probes (linear probing, head tuning, full tuning) on mmsegmentation 1.x.

Importing this package is cheap; mmseg is imported only by `mm_compat.import_mmseg()`.
"""
