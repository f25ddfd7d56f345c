"""`probes demo`: the built-in default, end to end, with no download."""
from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand."""
    demo = sub.add_parser("demo", help="run the whole pipeline on tiny encoders and tiny data (no download)")
    demo.add_argument("--out", type=Path, default=Path("demo_out"), help="where encoders, data, results and report go")
    demo.add_argument("--seg-iters", type=int, default=60, help="training iterations per segmentation run")
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print where everything is, and the headline tables."""
    from probes.demo.run import run_demo

    # The OpenMMLab stack's deprecation notices (dozens per run) would bury what the demo shows.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(mmseg|mmcv|mmengine)(\.|$)")
    start = time.perf_counter()
    report = run_demo(args.out, seg_iters=args.seg_iters)
    print(report.headline)
    print(f"\ndemo finished in {time.perf_counter() - start:.0f}s")
    print(f"encoders (Hugging Face folders): {(args.out / 'encoders').resolve()}")
    print(f"data (real on-disk layouts):     {(args.out / 'data').resolve()}")
    print(f"result CSVs:                     {(args.out / 'results').resolve()}")
    print(f"report:                          {report.index.resolve()}")
    print(f"plots:                           {(report.index.parent / 'plots').resolve()}")
    return 0
