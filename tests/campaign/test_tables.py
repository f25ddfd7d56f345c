"""`probes plan --table 14|15`: exactly the published runs, their shipped configs, commands the parser takes."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from probes.campaign.launch import Resources, command_line, probes_argv, probes_part
from probes.campaign.matrix import table_runs
from probes.cli import build_parser, main
from probes.config_files import config_dir, reference_dir


def _cells(name: str, columns: tuple[str, ...]) -> set:
    with (reference_dir() / name).open(newline="") as handle:
        return {tuple(r[c] for c in columns) for r in csv.DictReader(handle)}


def _parse(argv: list[str]):
    parser = build_parser()
    parser.allow_abbrev = False
    return parser.parse_args(argv)


def test_table15_is_the_30_published_runs_with_their_shipped_configs() -> None:
    runs = table_runs("15")
    published = {c for c in _cells("internvl2_5_table15_segmentation.csv", ("encoder_version", "dataset", "mode"))
                 if c[1] in ("ADE20K", "COCO-Stuff")}
    assert len(runs) == 30 and len(published) == 30
    assert {(r.version, r.dataset, r.mode) for r in runs} == published
    for run in runs:
        key = {"ADE20K": "ade20k", "COCO-Stuff": "coco-stuff"}[run.dataset]
        assert Path(run.config) == config_dir("segmentation") / run.version / f"{key}_{run.mode}.py"
        assert run.encoder == f"OpenGVLab/{run.version}"
    assert len({r.key for r in runs}) == 30


def test_table14_is_six_classify_runs_each_training_both_probes() -> None:
    runs = table_runs("14")
    published = {(v, int(s)) for v, s in _cells("internvl2_5_table14_classification.csv",
                                                ("encoder_version", "image_size"))}
    assert len(runs) == 6 and {(r.version, r.image_size) for r in runs} == published
    configs = {(r.version, r.image_size): r.config for r in runs}
    assert configs[("InternViT-6B-224px", 224)] == "internvit_6b_224px"
    assert configs[("InternViT-6B-224px", 448)] == "internvit_6b_224px_at_448"
    assert configs[("InternViT-6B-448px-V1-0", 448)] == "internvit_6b_448px_v1_0"
    for run in runs:
        args = _parse(probes_argv(run, Path("/c"), "/data/imagenet", Resources(8, 1)))
        assert args.command == "classify" and args.probes is None   # the config's probes: linear and attention
        assert args.config == run.config and args.out == "/c/classification" and args.device == "cuda"


@pytest.mark.parametrize("gpus,nodes,launcher", [(1, 1, "none"), (8, 1, "pytorch"), (8, 2, "slurm")])
def test_every_command_shape_parses_with_the_real_parser(gpus: int, nodes: int, launcher: str) -> None:
    res = Resources(gpus, nodes)
    for run in table_runs("all"):
        argv = probes_argv(run, Path("/c"), "/data/x", res, "fsdp" if run.mode == "full" else "none")
        line = command_line(argv, res)
        args = _parse(probes_part(line))
        assert args.command == run.task
        if run.task == "segment":
            assert (args.dataset, args.mode, str(args.config)) == (
                {"ADE20K": "ade20k", "COCO-Stuff": "coco-stuff"}[run.dataset], run.mode, run.config)
            assert args.launcher == launcher
        prefix = line.split(" -m probes.cli ")[0].split(" probes ")[0]
        assert prefix.startswith({1: "probes", 8: "torchrun" if nodes == 1 else "srun"}[gpus])


def test_plan_table_all_prints_every_run_as_json(capsys, tmp_path) -> None:
    assert main(["plan", "--table", "all", "--format", "json", "--out", str(tmp_path / "c"),
                 "--data-ade20k", str(tmp_path)]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert len(entries) == 36 and not (tmp_path / "c" / "plan.json").exists()   # json: stdout only
    by_key = {e["key"]: e for e in entries}
    full = by_key["t15_InternViT-6B-448px-V2_5_ade20k_full"]
    # 6.3B trainable parameters with AdamW fit 8 x 80 GiB GPUs under DDP in the released arrangement, whose
    # fp32 masters and AdamW state are partitioned (ZeRO-1): the plan needs no FSDP (which would change it).
    assert full["strategy"] == "none" and "--strategy" not in full["command"]
    assert full["peak_memory_gib"] < 80 and full["gpu_hours"] > by_key[
        "t15_InternViT-6B-448px-V2_5_ade20k_head"]["gpu_hours"] > by_key[
        "t15_InternViT-6B-448px-V2_5_ade20k_linear"]["gpu_hours"] > 0
    for entry in entries:
        assert _parse(entry["argv"]).command == entry["task"]
        assert probes_part(entry["command"])[:len(entry["argv"])] == entry["argv"]
        assert "--resume" in entry["resume_command"] and "--resume" not in entry["command"]
        # no weights in the cache here: no run id, and the plan says why
        assert entry["run_id"] is None and entry["run_id_note"]
    assert sum(e["gpu_hours"] for e in entries) > 500   # order of a thousand GPU-hours, as a FLOP count says


def test_a_matrix_file_crosses_encoders_with_tasks_and_names_a_bad_key(tmp_path) -> None:
    from probes.campaign.matrix import matrix_runs
    from probes.errors import ConfigError

    matrix = tmp_path / "m.yaml"
    matrix.write_text("encoders: [InternViT-300M-448px, timm:vit_base_patch16_224.augreg_in21k]\n"
                      "classify: {probes: [linear], epochs: 2}\n"
                      "segment: {datasets: [ade20k], modes: [linear, full], iters: 100, strategy: fsdp,\n"
                      "          cfg_options: {model.decode_head.dropout_ratio: 0.0}}\n")
    runs = matrix_runs(matrix)
    assert [(r.task, r.dataset, r.mode) for r in runs] == [
        ("classify", "ImageNet", None), ("segment", "ADE20K", "linear"), ("segment", "ADE20K", "full")] * 2
    argv = probes_argv(runs[2], Path("/c"), "/ade", Resources(8, 1), "fsdp")
    args = _parse(argv)
    assert (args.iters, args.strategy, args.cfg_options) == (100, "fsdp", ["model.decode_head.dropout_ratio=0.0"])
    assert argv.count("--strategy") == 1
    assert _parse(probes_argv(runs[0], Path("/c"), "/in", Resources(1, 1))).probes == "linear"
    (tmp_path / "bad.yaml").write_text("encoders: [a]\nsegment: {mode: [linear]}\n")
    with pytest.raises(ConfigError, match="unknown key 'mode'"):
        matrix_runs(tmp_path / "bad.yaml")
    (tmp_path / "m.py").write_text("encoders = ['InternViT-300M-448px']\nclassify = dict(epochs=1)\n")
    assert [r.task for r in matrix_runs(tmp_path / "m.py")] == ["classify"]


def test_a_segment_run_id_is_the_one_the_job_computes(tiny_encoders, tmp_path) -> None:
    """The job runs the plan's arguments with --resume (and --launcher pytorch on several GPUs): same run id."""
    import numpy as np

    from probes.campaign.matrix import RunSpec
    from probes.campaign.planning import plan_argv, resolve_run
    from probes.testing.segmentation_data import write_ade20k

    def scene(rng: np.random.Generator, height: int, width: int):
        labels = np.zeros((height, width), np.uint8)
        labels[:, width // 2:] = 1
        return np.repeat(labels[..., None] * 200, 3, axis=2).astype(np.uint8), labels

    data = write_ade20k(tmp_path / "data", scene, 2, 2)
    spec = RunSpec("segment", str(tiny_encoders[0]), "custom", dataset="ADE20K", mode="head",
                   flags=(("--iters", 4),), cfg_options=("model.decode_head.channels=16",
                                                         "model.auxiliary_head.channels=16"))
    argv = probes_argv(spec, tmp_path / "c", str(data), Resources(0, 1))
    cut = argv.index("--cfg-options")
    argv = [*argv[:cut], "--allow-subset", *argv[cut:]]   # the tiny data is a subset
    planned = resolve_run(argv, "custom", has_data=True)
    assert planned.run_id and planned.run_id.startswith("encA_ade20k_head_")
    job_argv = [*argv[:cut], "--allow-subset", "--resume", "--launcher", "pytorch", *argv[cut + 1:]]
    assert plan_argv(job_argv).run_id == planned.run_id


def test_a_missing_encoder_is_the_reason_and_the_architecture_is_still_planned(tmp_path, count_calls):
    import probes.classification.plan  # noqa: F401 (loaded, so its resolve_encoder is counted too)
    from probes.campaign.planning import resolve_run

    calls = count_calls("probes.encoders.resolved", "resolve_encoder")
    argv = ["classify", "--encoder", str(tmp_path / "no-such-ckpt"), "--data", str(tmp_path / "no-data")]
    planned = resolve_run(argv, "InternViT-300M-448px", has_data=True)
    assert planned.run_id is None and "no-such-ckpt" in planned.note and "does not exist" in planned.note
    assert planned.plan is not None and planned.plan.encoder.version_label == "InternViT-300M-448px"
    assert len(calls) == 2   # the missing source once, the published architecture once


def test_a_run_whose_encoder_is_there_is_planned_with_one_resolution(tiny_encoders, count_calls):
    import probes.classification.plan  # noqa: F401 (loaded, so its resolve_encoder is counted too)
    from probes.campaign.planning import resolve_run

    calls = count_calls("probes.encoders.resolved", "resolve_encoder")
    planned = resolve_run(["classify", "--encoder", str(tiny_encoders[0])], "custom", has_data=False)
    assert planned.plan is not None and planned.note.startswith("no data folder")
    assert len(calls) == 1
