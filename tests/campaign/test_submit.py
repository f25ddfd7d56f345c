"""--submit: Slurm jobs as submitit would send them (no cluster), and a local campaign run end to end."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from probes.campaign.job import PREEMPTED_MARK, CampaignJob, log_path
from probes.campaign.planfile import new_plan, read_plan, write_plan
from probes.campaign.submit import SlurmOptions, job_of, make_executor, slurm_parameters, submit_campaign
from probes.cli import main
from probes.results import read_rows

ARGV = ["segment", "--encoder", "/ckpt/a", "--dataset", "ade20k", "--data", "/data", "--mode", "full",
        "--out", "/c/segmentation", "--device", "cuda", "--strategy", "fsdp", "--cfg-options", "a.b=1"]


def _entry(key: str = "t15_a_ade20k_full", gpus: int = 8, nodes: int = 2, gpu_hours: float = 160.0) -> dict:
    return {"key": key, "task": "segment", "argv": list(ARGV), "command": "probes " + " ".join(ARGV),
            "resume_command": "x --resume", "run_id": f"id_{key}", "gpus": gpus, "nodes": nodes,
            "gpu_hours": gpu_hours, "jobs": []}


@pytest.fixture
def slurm_here(monkeypatch):
    """A SlurmExecutor on a machine without Slurm: srun is 'found', and sbatch is never called."""
    import submitit
    from submitit.slurm import slurm

    monkeypatch.setattr(slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    ids = itertools.count(4242)
    monkeypatch.setattr(slurm.SlurmExecutor, "_make_submission_command",
                        lambda self, path: ["echo", f"Submitted batch job {next(ids)}"])
    return submitit


def test_a_slurm_job_asks_for_the_plans_resources_and_requeues(slurm_here, tmp_path) -> None:
    entry = _entry()
    options = SlurmOptions(partition="gpu", account="lab", time_limit_h=48.0, extra={"exclusive": ""})
    params = slurm_parameters(entry, options)
    # 160 GPU-hours over 16 GPUs: 10 h; asked 1.5 x 10 h + 30 min
    assert params["time"] == 15.5 * 60 and params["nodes"] == 2 and params["gpus_per_node"] == 8
    text = make_executor("slurm", tmp_path, entry, options)._make_submission_file_text("CMD", "uid")
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --cpus-per-task=64", "#SBATCH --partition=gpu", "#SBATCH --account=lab",
                 "#SBATCH --requeue", "#SBATCH --exclusive", "#SBATCH --signal=USR2@180", "#SBATCH --time=930",
                 "#SBATCH --job-name=probes-t15_a_ade20k_full"):
        assert line in text.splitlines(), line
    assert slurm_parameters(_entry(gpu_hours=10_000), options)["time"] == 48 * 60   # at most the limit


def test_submitting_records_each_job_id_in_the_plan(slurm_here, tmp_path) -> None:
    write_plan(tmp_path, new_plan(tmp_path, [_entry("a"), _entry("b")], {}))
    submitted = submit_campaign(read_plan(tmp_path), tmp_path, "slurm", SlurmOptions(), say=lambda s: None)
    assert [s["job_id"] for s in submitted] == ["4242", "4243"]
    jobs = [e["jobs"] for e in read_plan(tmp_path)["entries"]]
    assert [[(j["executor"], j["job_id"], j["was"]) for j in js] for js in jobs] == [
        [("slurm", "4242", "missing")], [("slurm", "4243", "missing")]]
    pickled = sorted((tmp_path / "submitit").rglob("*_submitted.pkl"))
    assert len(pickled) == 2   # each job's function, as the cluster would unpickle it


def test_a_preempted_job_requeues_its_resume_form_on_every_node(tmp_path) -> None:
    job = job_of(tmp_path, _entry())
    delayed = job.checkpoint()
    again = delayed.function
    assert isinstance(again, CampaignJob) and again.key == job.key and not delayed.args
    assert PREEMPTED_MARK in log_path(tmp_path, job.key).read_text()
    command = again.command(node=1, master="node-a")
    assert command[1:3] == ["-m", "torch.distributed.run"]
    for flag, value in (("--nnodes", "2"), ("--node_rank", "1"), ("--nproc_per_node", "8"),
                        ("--master_addr", "node-a")):
        assert command[command.index(flag) + 1] == value
    argv = command[command.index("probes.cli") + 1:]
    # --resume and the launcher come before --cfg-options, which takes every word after it
    assert argv[-4:] == ["--launcher", "pytorch", "--cfg-options", "a.b=1"] and "--resume" in argv[:-2]
    single = CampaignJob(str(tmp_path), "k", ["classify", "--encoder", "x"], gpus=1, nodes=1)
    assert single.command()[1:] == ["-m", "probes.cli", "classify", "--encoder", "x", "--resume"]


@pytest.fixture(scope="module")
def local_campaign(tiny_encoders, imagenet_root, tmp_path_factory) -> Path:
    """Two tiny encoders x classify (1 epoch, one head, IN-1K only), submitted locally."""
    folder = tmp_path_factory.mktemp("campaign")
    matrix = folder / "matrix.yaml"
    matrix.write_text(f"encoders: [{tiny_encoders[0]}, {tiny_encoders[1]}]\n"
                      "classify:\n  config: tiny_demo\n  epochs: 1\n  probes: linear\n  lrs: [0.1]\n"
                      "  cfg_options: ['data.test_sets=[IN-1K]', train.eval_every_epoch=False]\n")
    code = main(["plan", "--matrix", str(matrix), "--gpus", "0", "--data-imagenet", str(imagenet_root),
                 "--out", str(folder / "c"), "--submit", "local"])
    assert code == 0   # the status printed after the runs: all done
    return folder / "c"


def test_submit_local_runs_both_and_status_says_done(local_campaign, capsys) -> None:
    plan = read_plan(local_campaign)
    assert [len(e["jobs"]) for e in plan["entries"]] == [1, 1]
    rows = read_rows(local_campaign / "classification" / "classification_results.csv")
    # The run ids planned (by the runs' own planning code) are the ones the runs wrote (3 rows each on IN-1K: the
    # published head, and the lr-0.1 grid head with raw and with EMA weights).
    assert {e["run_id"] for e in plan["entries"]} == {r["run_id"] for r in rows} and len(rows) == 2 * 3
    assert main(["status", str(local_campaign)]) == 0
    assert "2 done" in capsys.readouterr().out
    # Submitting again submits nothing: both runs are done.
    assert submit_campaign(plan, local_campaign, "local", say=lambda s: None) == []


def test_the_report_lists_a_planned_run_without_rows_as_missing(local_campaign, tiny_encoders, tmp_path) -> None:
    from probes.report.build import build_report

    plan = read_plan(local_campaign)
    extra = json.loads(json.dumps(plan["entries"][1]))
    extra.update(key="classify_encC", label="encC", run_id="encC_56px_linear_live_00000000", jobs=[])
    plan["entries"].append(extra)
    planned = tmp_path / "plan.json"
    write_plan(planned, plan)
    rows = read_rows(local_campaign / "classification" / "classification_results.csv")
    assert not any("encC" in r["run_id"] for r in rows)   # planned only: any encC row comes from the plan
    report = build_report(local_campaign, tmp_path / "r1", bootstrap=0, plan=planned)
    t14 = report.frames["table14_classification"]
    row = t14[t14["encoder"] == "encC"]
    assert len(row) == 1 and row["note"].iloc[0] == "missing (missing)" and row["IN-1K"].isna().all()
    text = report.index.read_text()
    assert "1 of 3 runs of the campaign plan" in text and "missing (missing)" in text
