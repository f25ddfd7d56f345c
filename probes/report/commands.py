"""`probes report RESULTS_DIR`: tables, comparisons and plots from result CSVs."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `report` subcommand."""
    parser = sub.add_parser("report", help="tables (Table 14/15 layouts, published beside measured) and plots")
    parser.add_argument("results", type=Path, help="folder searched recursively for result CSVs")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RESULTS/report)")
    parser.add_argument("--reference", type=Path, default=None,
                        help="folder with the published tables (default: the suite's results/reference)")
    parser.add_argument("--format", default="md,csv", help="comma list of md, csv, tex (md and csv always)")
    parser.add_argument("--compare", nargs="+", default=None, metavar="LABEL",
                        help="runs or encoders to compare side by side, as labelled in the tables "
                             "('NAME', 'NAME @448', 'NAME (run 2)'); the first is the baseline (default: all)")
    parser.add_argument("--segmentation-metric", choices=("final", "best"), default="final",
                        help="Table 15 shows the final evaluation (mIoU, default) or the best one over training "
                             "(best_mIoU: selected on the validation set, which is the test set)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="resamples per 95%% bootstrap interval over images, from the runs' per-image side files "
                             "(default 1000; 0: no intervals)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the bootstrap resamples (default 0)")
    parser.add_argument("--top-classes", type=int, default=10, metavar="K",
                        help="with --compare: the K classes with the largest gains and the K with the largest losses "
                             "per set (default 10)")
    parser.add_argument("--plan", type=Path, default=None,
                        help="a campaign's plan.json (probes plan): its runs without rows are listed as missing "
                             "(default: RESULTS/plan.json when there)")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 2 if any result row was malformed and skipped (the report is "
                             "still written)")
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Build the report and print the headline table (and any skipped rows)."""
    from probes.errors import ConfigError
    from probes.report.build import build_report, skipped_summary
    from probes.report.evidence.measured import ResultFileError

    formats = {f.strip() for f in args.format.split(",") if f.strip()}
    unknown = formats - {"md", "csv", "tex"}
    if unknown:
        raise ConfigError(f"--format {','.join(sorted(unknown))} is not one of md, csv, tex")
    out = args.out or args.results / "report"
    report = build_report(args.results, out, reference_dir=args.reference, formats=formats, compare=args.compare,
                          segmentation_metric=args.segmentation_metric, bootstrap=args.bootstrap, seed=args.seed,
                          top_classes=args.top_classes, plan=args.plan)
    if args.strict and report.skipped:
        count = f"{len(report.skipped)} malformed result row{'' if len(report.skipped) == 1 else 's'}"
        raise ResultFileError(f"{count} skipped (first: {report.skipped[0]}); {report.index} lists them all")
    print(report.headline)
    if report.skipped:
        print(skipped_summary(report.skipped))
    print(f"report: {report.index}")
    print(f"tables: {', '.join(str(p) for p in report.tables if p.suffix == '.md')}")
    print(f"plots:  {', '.join(str(p) for p in report.plots if p.suffix == '.png')}")
    print(f"intervals: {report.interval_seconds:.1f} s ({report.side_file_reads} side files read)")
    return 0
