"""The published numbers shipped in `results/reference/`."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from probes.config_files import reference_dir as packaged_reference_dir
from probes.encoders.versions import VERSIONS
from probes.errors import DatasetError
from probes.report.tables.layouts import DELTA, DELTA1, DELTA2, PROBE_NAMES, T15_CELLS, t15_column
from probes.results import PROBES, TEST_SETS

DEFAULT_REFERENCE = packaged_reference_dir()   # package data (the checkout's results/reference/ links here)
TABLE14 = "internvl2_5_table14_classification.csv"
TABLE15 = "internvl2_5_table15_segmentation.csv"


def load_published(reference_dir: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Table 14 rows, Table 15 rows) in long format, each naming its source table."""
    folder = Path(reference_dir) if reference_dir is not None else DEFAULT_REFERENCE
    tables = []
    for name in (TABLE14, TABLE15):
        path = folder / name
        if not path.is_file():
            raise DatasetError(f"published table {path} is missing; pass --reference DIR holding {name}")
        tables.append(pd.read_csv(path))
    return tables[0], tables[1]


def published_table14(rows: pd.DataFrame) -> pd.DataFrame:
    """The published Table 14 in the report's own layout (rows: version x probe)."""
    out = []
    for (version, size), group in rows.groupby(["encoder_version", "image_size"], sort=False):
        cells = group.set_index(["probe", "test_set"])["top1"]
        label = version if size == VERSIONS[version].image_size else f"{version} @{size}"
        for probe in PROBES:
            row = {"encoder": label, "probe": PROBE_NAMES[probe]}
            row.update({s: cells.get((probe, s)) for s in (*TEST_SETS, "avg")})
            row[DELTA] = cells.get(("delta", "avg")) if probe == "attention_pooling" else float("nan")
            row["source"] = group["source"].iloc[0]
            out.append(row)
    return pd.DataFrame(out)


def published_table15(rows: pd.DataFrame) -> pd.DataFrame:
    """The published Table 15 in the report's layout: every cell, with averages and deltas as printed."""
    names = {("avg", "delta1"): DELTA1, ("avg", "delta2"): DELTA2}
    out = []
    for version, group in rows.groupby("encoder_version", sort=False):
        cells = {names.get((d, m), t15_column(d, m)): value
                 for d, m, value in zip(group["dataset"], group["mode"], group["mIoU"])}
        out.append({"encoder": version, **{c: cells.get(c, float("nan")) for c in T15_CELLS},
                    "source": group["source"].iloc[0]})
    return pd.DataFrame(out, columns=["encoder", *T15_CELLS, "source"])
