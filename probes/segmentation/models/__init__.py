"""The segmentation model parts the suite adds to mmseg's: encoder backbone, pyramid neck, linear head, segmentor.

Importing this package registers nothing; `probes.segmentation.registry.register_modules` does, explicitly.
"""
