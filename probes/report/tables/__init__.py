"""Tables: the report's DataFrames. Runs from result rows (`runs`), Table 14 / 15 layouts and comparisons
(`layouts`), their intervals (`intervals`), version differences (`version_tables`), per-class changes
(`class_change_tables`), published numbers (`published`) and the column names they share (`columns`).
Imports `stats` and `evidence`, never rendering or build."""
