"""Tables (published beside measured, deltas), version comparisons and plots from result CSVs."""
