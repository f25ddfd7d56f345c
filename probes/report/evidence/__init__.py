"""Evidence: what the runs left on disk, read once. Result CSVs (`measured`), each cell's per-image side
file (`per_image`), repeated segmentation runs (`replicas`), and the resamples of those per-image vectors
(`resample`). Imports `stats` only, never the tables, rendering or build layers above it."""
