"""`probes plan` and `probes status`: a whole table (or a matrix) as one campaign (imports stay lazy)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `plan` and `status` subcommands."""
    p = sub.add_parser(
        "plan", help="every run of a table (or a matrix): commands, estimated cost, run ids; submit them",
        description="Plan Table 14 (6 classify runs), Table 15 (30 segment runs) or a matrix file as one campaign: "
                    "one entry per run with its exact command, estimated GPU-hours and peak memory per GPU, and its "
                    "run id when the weights and data are there. Writes OUT/plan.json; --submit runs it.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--table", choices=("14", "15", "all"), help="the published runs of InternVL 2.5 Table 14/15 (default: none; this or --matrix)")
    what.add_argument("--matrix", type=Path, help="a YAML or python file: encoders x classify / segment settings (default: none; this or "
                      "--table)")
    p.add_argument("--data-imagenet", help="ImageNet root for classify runs (default: none: commands lack --data)")
    p.add_argument("--data-ade20k", help="ADEChallengeData2016/ for ADE20K runs (default: none)")
    p.add_argument("--data-coco-stuff", help="coco_stuff164k/ for COCO-Stuff runs (default: none)")
    p.add_argument("--encoders", type=Path, help="folder holding one checkpoint folder per version, named as the "
                   "version (default: the hub ids, read from the Hugging Face cache)")
    p.add_argument("--out", type=Path, default=Path("campaign"),
                   help="campaign folder: plan.json, logs/, and the runs' results under classification/ and "
                        "segmentation/")
    p.add_argument("--gpus", type=int, default=8, help="GPUs per node of each run (0: the CPU)")
    p.add_argument("--nodes", type=int, default=1, help="nodes of each run")
    p.add_argument("--throughput", type=Path, metavar="GPU_CHECK_JSON",
                   help="gpu_check.json written by benchmarks/gpu_check.py: its measured utilisation sets the "
                        "GPU-hours (default: --utilisation of --gpu-type's peak, an assumption)")
    p.add_argument("--gpu-type", default="H100", help="the device the estimates are for: H100, H100 PCIe, H200, "
                   "A100, L40S")
    p.add_argument("--utilisation", type=float, default=0.4, help="assumed fraction of the dense bf16 peak")
    p.add_argument("--gpu-memory", type=float, help="GiB per GPU (default: the device's; FSDP is planned for runs "
                   "that would not fit)")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="table (and write OUT/plan.json) or json (the entries on stdout, no file)")
    p.add_argument("--submit", choices=("slurm", "local"), help="submit every run not done or running through "
                   "submitit: slurm (one job per run) or local (one after another here) (default: plan only)")
    p.add_argument("--partition", help="slurm partition (default: the cluster's)")
    p.add_argument("--account", help="slurm account (default: none)")
    p.add_argument("--qos", help="slurm quality of service (default: none)")
    p.add_argument("--constraint", help="slurm node constraint, e.g. h100 (default: none)")
    p.add_argument("--cpus-per-gpu", type=int, default=8, help="CPU cores per GPU a job asks for")
    p.add_argument("--time-limit", type=float, default=48.0, metavar="HOURS",
                   help="the most one slurm job asks for; a longer run is requeued from its checkpoint")
    p.add_argument("--sbatch", nargs="+", default=[], metavar="KEY=VALUE",
                   help="other sbatch options, e.g. exclusive= mem=0 (default: none)")
    p.set_defaults(func=run_plan)

    s = sub.add_parser("status", help="where each planned run stands, and the command that continues it",
                       description="done / running / interrupted / failed / missing for every run of OUT/plan.json, "
                                   "each with the command that continues or starts it. Exit 0 only when all are done.")
    s.add_argument("campaign", type=Path, help="the campaign folder (holding plan.json) or a plan.json")
    s.add_argument("--stale-minutes", type=float, default=30.0,
                   help="a heartbeat or checkpoint older than this no longer counts as running")
    s.add_argument("--format", choices=("table", "json"), default="table", help="table or json")
    s.set_defaults(func=run_status)


def _throughput_of(args: argparse.Namespace) -> Any:
    from probes.campaign import cost

    if args.throughput is None:
        fixed = cost.default_throughput(args.gpu_type, args.utilisation, args.gpu_memory)
        return lambda width: fixed
    return lambda width: cost.measured_throughput(args.throughput, width, args.gpu_memory)


def _table(header: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _number(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def show_plan(entries: List[Dict[str, Any]], basis: str) -> str:
    """The plan as the terminal shows it: a table, totals, then every command."""
    rows = [[str(i + 1), e["task"], e["label"], e["dataset"], e["mode"] or "+".join(e["probes"] or []),
             e["config"] or "", f"{e['nodes']}x{e['gpus']}", _number(e["gpu_hours"]), _number(e["peak_memory_gib"]),
             e["run_id"] or f"— ({e['run_id_note'][:50]})"] for i, e in enumerate(entries)]
    hours = [e["gpu_hours"] for e in entries if e["gpu_hours"] is not None]
    lines = [_table(["#", "task", "encoder", "dataset", "mode/probes", "config", "nodes x GPUs",
                     "GPU-h (est.)", "peak GiB/GPU (est.)", "run id"], rows), "",
             f"{len(entries)} runs, {_number(sum(hours), 0)} GPU-hours in all ({basis})", ""]
    lines += [f"# {i + 1} {e['key']}\n{e['command']}" for i, e in enumerate(entries)]
    notes = sorted({f"{e['key']}: {n}" for e in entries for n in e.get("cost_notes", []) if "does not fit" in n})
    needs = sorted({e["needs"] for e in entries if e.get("needs")})
    if needs:
        notes.append(f"the commands have no data folder: pass {', '.join(needs)} to make them runnable")
    return "\n".join(lines + ([""] + [f"note: {n}" for n in notes] if notes else []))


def run_plan(args: argparse.Namespace) -> int:
    """Plan (and optionally submit) a campaign."""
    from probes.campaign.launch import Resources
    from probes.campaign.matrix import matrix_runs, table_runs
    from probes.campaign.planfile import new_plan, plan_path, read_plan, write_plan
    from probes.campaign.planning import plan_entry
    from probes.errors import ConfigError

    if args.gpus < 0 or args.nodes < 1:
        raise ConfigError(f"--gpus {args.gpus} must be >= 0 and --nodes {args.nodes} >= 1")
    out = args.out.expanduser().resolve()
    specs = table_runs(args.table, args.encoders) if args.table else matrix_runs(args.matrix)
    data = {"ImageNet": args.data_imagenet, "ADE20K": args.data_ade20k, "COCO-Stuff": args.data_coco_stuff}
    data = {k: str(Path(v).expanduser().resolve()) if v else None for k, v in data.items()}
    throughput_of = _throughput_of(args)
    res = Resources(args.gpus, args.nodes)
    entries = [plan_entry(spec, out, data, res, throughput_of) for spec in specs]
    basis = throughput_of(3200).basis if args.gpus else "CPU runs: no GPU-hours"
    if args.format == "json" and not args.submit:
        print(json.dumps(entries, indent=2, default=str))
        return 0
    if plan_path(out).is_file():   # a re-plan keeps each run's job history
        old = {e["key"]: e.get("jobs", []) for e in read_plan(out)["entries"]}
        for entry in entries:
            entry["jobs"] = old.get(entry["key"], [])
    plan = new_plan(out, entries, {"source": f"--table {args.table}" if args.table else f"--matrix {args.matrix}",
                                   "resources": {"gpus": args.gpus, "nodes": args.nodes},
                                   "throughput": throughput_of(3200).as_dict() if args.gpus else None})
    write_plan(out, plan)
    print(json.dumps(entries, indent=2, default=str) if args.format == "json" else show_plan(entries, basis))
    print(f"plan: {plan_path(out)}")
    if args.submit:
        from probes.campaign.submit import SlurmOptions, submit_campaign

        extra = dict(item.split("=", 1) if "=" in item else (item, "") for item in args.sbatch)
        options = SlurmOptions(args.partition, args.account, args.qos, args.constraint, args.cpus_per_gpu,
                               args.time_limit, extra)
        submit_campaign(plan, out, args.submit, options)
        if args.submit == "local":
            return run_status(argparse.Namespace(campaign=out, stale_minutes=30.0, format="table"))
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print every planned run's state; 0 only when all are done."""
    from probes.campaign.planfile import plan_path, read_plan
    from probes.campaign.status import campaign_status, counts

    path = plan_path(args.campaign)
    statuses = campaign_status(read_plan(path), path.parent, args.stale_minutes)
    if args.format == "json":
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
    else:
        print(_table(["run", "state", "detail"], [[s.key, s.state, s.detail] for s in statuses]))
        todo = [s for s in statuses if s.command]
        if todo:
            print("\nto continue or start:")
            print("\n".join(f"# {s.key} ({s.state})\n{s.command}" for s in todo))
        print(f"\n{counts(statuses)} ({path})")
    return 0 if all(s.state == "done" for s in statuses) else 1
