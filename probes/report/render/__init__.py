"""Rendering: tables written as Markdown / CSV / LaTeX (`formats`) and figures (`plots`). Imports the layers
below it (`tables`, and through them `evidence` and `stats`), never `build` or `commands`."""
