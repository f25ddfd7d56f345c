"""One prepared script for a lent GPU: every figure only a GPU can show, in one run of at most ~8 minutes.

Figures (each one measured here, on this run's device, and written with the device's name):
- forward throughput of the 300M shape (24 blocks) and the 6B shape (full width 3200, depth cut to
  ``--depth-6b``) at 448 px, bf16 weights, and MFU: the analytic forward FLOPs (2 per MAC; patch
  embedding, projections, MLP, attention products) times the measured img/s over the device's dense
  bf16 peak (a table of known cards; n/a elsewhere);
- ours vs timm vs the official eager implementation on the same device (benchmarks/encoder_throughput.py);
- a tiny end-to-end ``probes classify`` on the device vs the same run on the CPU (fp16 autocast with
  loss scaling on CUDA, fp32 on CPU): per row, top-1 within one image of the set;
- device crops vs worker crops: pixel equality on the device and both paths' per-image timings, as
  data.crop_on='auto' times them (probes.classification.pipeline.image_paths);
- JPEG decode throughput through data.decode='gpu' (nvJPEG on CUDA, libjpeg on CPU);
- segmentation step time and peak memory, head / linear / full, at 6B width (benchmarks/segmentation_step.py);
- a tiny end-to-end ``probes segment`` (head tuning, precision='released': bf16 encoder and neck weights,
  fp32 heads, fp32 masters) on the device vs the same run on the CPU: first-iteration loss and mIoU, each
  against a stated tolerance (recorded, not fatal: a miss is a finding, not a crash);
- full tuning under ``--strategy fsdp`` in one process (torchrun, 1 process) at 6B width and the released head
  widths (1536): step time and peak memory as mmengine logs them.

    python benchmarks/gpu_check.py                        # on one CUDA GPU
    python benchmarks/gpu_check.py --device cpu --tiny    # the same code paths at toy size (CI)

Writes ``gpu_check.json`` and ``gpu_check.md`` (one RESULTS.md row per figure) into ``--out``.
Last line: ``gpu_check ok figures=N``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from probes.campaign.cost import EncoderShape, device_spec  # noqa: E402
from probes.classification.config import load_config  # noqa: E402
from probes.classification.datasets import ImageSet  # noqa: E402
from probes.classification.pipeline.image_paths import time_crop_paths  # noqa: E402
from probes.classification.pipeline.device_crops import DeviceCrops, TrainCropPlans, collate_plans  # noqa: E402
from probes.classification.pipeline.gpu_decode import EncodedFiles, TensorDecodeCrops, collate_encoded  # noqa: E402
from probes.classification.pipeline.images import ImageFiles, build_train_transform, collate  # noqa: E402
from probes.encoders.versions import VERSIONS  # noqa: E402
from probes.errors import ProbeError  # noqa: E402
from probes.runtime import resolve_device  # noqa: E402
from probes.testing.checkpoints import random_internvit  # noqa: E402

Figure = Dict[str, Any]


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="default: cuda if present, else cpu")
    parser.add_argument("--tiny", action="store_true", help="toy sizes: proves the code paths run (CI, CPU)")
    parser.add_argument("--depth-6b", type=int, default=12, help="blocks of the 6B-width encoder (45 real)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for gpu_check.json / .md")
    return parser.parse_args()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """The card's name (or the CPU's core count)."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {os.cpu_count()} cores"


def bf16_peak(name: str) -> Optional[float]:
    """The dense bf16 peak of a known card (the campaign cost model's table), else None."""
    try:
        return device_spec(name)[1]
    except ProbeError:
        return None


def forward_flops(cfg, image_size: int) -> float:
    """Forward FLOPs of one image, counted as the campaign cost model counts them (one count for both)."""
    return EncoderShape(cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.num_attention_heads,
                        cfg.patch_size).forward_flops(image_size)


def encoder_forward(device: torch.device, tiny: bool, depth_6b: int) -> List[Figure]:
    """img/s and MFU of the 300M and the 6B-width encoder forward (bf16 weights on CUDA)."""
    size, rounds = (56, 1) if tiny else (448, 10)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    peak = bf16_peak(device_name(device)) if device.type == "cuda" else None
    figures = []
    for label, version, depth, batch in (("300M", "InternViT-300M-448px", 1 if tiny else 24, 1 if tiny else 32),
                                         ("6B", "InternViT-6B-448px-V2_5", 1 if tiny else depth_6b, 1 if tiny else 8)):
        cfg = VERSIONS[version].replace(num_hidden_layers=depth, image_size=size)
        model = random_internvit(cfg, seed=0).to(device=device, dtype=dtype).requires_grad_(False)
        images = torch.randn(batch, 3, size, size, device=device, dtype=dtype)
        times = []
        with torch.inference_mode():
            model.forward_features(images)   # warm-up
            for _ in range(rounds):
                _sync(device)
                start = time.perf_counter()
                model.forward_features(images)
                _sync(device)
                times.append(time.perf_counter() - start)
        rate = batch / statistics.median(times)
        flops = forward_flops(cfg, size)
        mfu = rate * flops / peak if peak else None
        shape = f"{label} width {cfg.hidden_size}, {depth} blocks, {size}px, batch {batch}, {dtype}"
        figures.append(figure(f"forward {label}", rate, "img/s", f"{shape}, median of {rounds}"))
        figures.append(figure(f"MFU {label}", mfu, "fraction of dense bf16 peak",
                              f"{shape}; {flops / 1e12:.3f} TFLOP/img (analytic) x measured img/s / "
                              f"{peak / 1e12:.0f} TFLOP/s" if peak else f"{shape}; no known bf16 peak for this device"))
        del model
    return figures


def _env() -> Dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))


def last_line_values(cmd: List[str], timeout: int) -> tuple[Dict[str, str], str]:
    """Run a benchmark script; its last line's key=value pairs and its whole stdout."""
    done = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, timeout=timeout, env=_env())
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    last = done.stdout.strip().splitlines()[-1]
    return dict(item.split("=", 1) for item in last.split()), done.stdout


def ours_vs_references(device: torch.device, tiny: bool) -> List[Figure]:
    """Ours vs timm vs eager (benchmarks/encoder_throughput.py) on this device."""
    args = ["--smoke", "--device", device.type] if tiny else \
        ["--device", device.type, "--model", "300m", "--image-size", "448", "--batch-size", "32", "--rounds", "10"]
    values, out = last_line_values([str(HERE / "encoder_throughput.py"), *args], 600)
    setting = out.splitlines()[0]
    return [figure("ours / timm throughput", float(values["ratio_vs_timm"]), "ratio", setting),
            figure("ours / eager throughput", float(values["ratio_vs_eager"]), "ratio", setting)]


def classify_end_to_end(device: torch.device, tmp: Path) -> List[Figure]:
    """A tiny `probes classify` on the device and on the CPU: per row, top-1 within one image of the set."""
    from probes.classification import runner
    from probes.testing.checkpoints import write_tiny_hf_encoder
    from probes.testing.imagenet_data import shared_a_r_classes, write_imagenet_root

    encoder = write_tiny_hf_encoder(tmp / "tiny_encoder", style="300m", seed=0)
    write_imagenet_root(tmp / "imagenet", shared_a_r_classes(4), train_per_class=4)
    rows = {}
    start = time.perf_counter()
    for side, where in (("cpu", "cpu"), ("device", device.type)):
        cfg = load_config("tiny_demo", {"encoder.source": str(encoder), "data.root": str(tmp / "imagenet"),
                                        "runtime.out": str(tmp / f"out_{side}"), "runtime.device": where,
                                        "probe.lrs": [0.1], "train.epochs": 1})
        rows[side] = {(r["probe"], r["lr"], r["ema"], r["test_set"]): r for r in runner.run_classify(cfg)}
    took = time.perf_counter() - start
    if rows["cpu"].keys() != rows["device"].keys():
        raise RuntimeError("classify on the device wrote other rows than on the CPU")
    worst = max(abs(float(rows["device"][k]["top1"]) - float(r["top1"])) * r["n_images"] / 100
                for k, r in rows["cpu"].items())
    if worst > 1 + 1e-6:
        raise RuntimeError(f"classify on {device}: a row's top-1 differs from the CPU's by {worst:.1f} images")
    return [figure("classify tiny, device vs CPU", worst, "images (max over rows)",
                   f"{len(rows['cpu'])} rows, tolerance 1 image per set; both runs {took:.0f} s")]


def device_crops(device: torch.device, tmp: Path, tiny: bool) -> List[Figure]:
    """Device crops equal worker crops on this device; both paths' per-image costs as 'auto' times them."""
    from data_pipeline import write_jpegs

    n, size = (8, 64) if tiny else (48, 448)
    (tmp / "jpegs").mkdir()
    files = write_jpegs(tmp / "jpegs", n)
    torch.manual_seed(0)
    worker = collate([ImageFiles(files, [0] * n, build_train_transform(size))[i] for i in range(n)])["images"]
    torch.manual_seed(0)
    plans = collate_plans([ImageFiles(files, [0] * n, TrainCropPlans(size))[i] for i in range(n)])
    ours = DeviceCrops(device)(plans)["images"].cpu()
    if not torch.equal(ours, worker):
        raise RuntimeError(f"device crops on {device} differ from the worker's Pillow crops")
    timing = time_crop_paths(ImageSet("train", files[0].parent, files, [0] * n), size, "bicubic",
                             load_config(None, {}).train, device, batch=min(16, n // 2))
    note = f"{timing.images} images {size}px, equal pixels on {n}; 'auto' keeps {timing.faster}"
    return [figure("crop, worker path", timing.worker_s * 1e3, "ms/img (worker CPU)", note),
            figure("crop, device path worker half", timing.plan_s * 1e3, "ms/img (worker CPU)", note),
            figure("crop, device path device half", timing.device_s * 1e3, "ms/img (synchronised)", note)]


def jpeg_decode(device: torch.device, tmp: Path, tiny: bool) -> List[Figure]:
    """Images/s through data.decode='gpu' (batched decode_jpeg, tensor crops) on this device."""
    files = sorted((tmp / "jpegs").glob("*.JPEG"))
    size = 64 if tiny else 224
    host = collate_encoded([EncodedFiles(files, [0] * len(files))[i] for i in range(len(files))])
    decode = TensorDecodeCrops(device, size)
    decode(host)   # warm-up
    times = []
    for _ in range(1 if tiny else 5):
        _sync(device)
        start = time.perf_counter()
        decode(host)
        _sync(device)
        times.append(time.perf_counter() - start)
    return [figure("JPEG decode + crop (data.decode='gpu')", len(files) / statistics.median(times), "img/s",
                   f"{len(files)} JPEGs 500x375 in one batch, crop {size}, median of {len(times)}")]


def segmentation_steps(device: torch.device, tiny: bool) -> List[Figure]:
    """Head / linear / full step time and peak memory at 6B width (benchmarks/segmentation_step.py)."""
    args = ["--smoke"] if tiny else ["--device", device.type, "--encoder", "random:InternViT-6B-224px",
                                     "--num-layers", "12", "--crop", "504", "--batch-size", "2"]
    values, out = last_line_values([str(HERE / "segmentation_step.py"), *args], 900)
    figures = []
    for mode, seconds, gib in re.findall(r"^\s*(full|head|linear): ([\d.]+) s/step, peak memory ([\d.]+) GiB",
                                         out, re.M):
        figures.append(figure(f"segmentation {mode} step", float(seconds), "s/step", out.splitlines()[0]))
        figures.append(figure(f"segmentation {mode} peak memory", float(gib), "GiB", out.splitlines()[0]))
    figures.append(figure("segmentation head / full time", float(values["head_time_ratio"]), "ratio", ""))
    figures.append(figure("segmentation head / full memory", float(values["head_memory_ratio"]), "ratio", ""))
    return figures


SEGMENT_SMALL = ["model.decode_head.channels=16", "model.auxiliary_head.channels=8"]


def _segment_args(encoder: str, data: Path, mode: str, out: Path, iters: int, crop: int, device: str) -> List[str]:
    return ["segment", "--encoder", encoder, "--dataset", "ade20k", "--data", str(data), "--mode", mode,
            "--iters", str(iters), "--batch-size", "2", "--crop-size", str(crop), "--device", device,
            "--workers", "0", "--out", str(out), "--allow-subset"]


def _logged(out: Path, key: str) -> List[float]:
    """One value per logged iteration from mmengine's scalars file (rank 0's own values)."""
    scalars = sorted(out.glob("*/*/vis_data/scalars.json"))[-1]
    rows = [json.loads(line) for line in scalars.read_text().splitlines()]
    return [float(r[key]) for r in rows if key in r and "loss" in r]


def segment_end_to_end(device: torch.device, tmp: Path) -> List[Figure]:
    """A tiny `probes segment` (head tuning, released precision) on the device and on the CPU."""
    import csv

    from probes.testing.checkpoints import write_tiny_hf_encoder
    from probes.testing.segmentation_data import band_scene, write_ade20k

    encoder = write_tiny_hf_encoder(tmp / "seg_encoder", style="6b", seed=0)
    data = write_ade20k(tmp / "seg_data", band_scene([0, 1, 2, 3]), n_train=4, n_val=2)
    rows, losses = {}, {}
    start = time.perf_counter()
    # On a CPU "device" the two runs would be one run twice: it runs once and is compared with itself.
    sides = (("cpu", "cpu"),) if device.type == "cpu" else (("cpu", "cpu"), ("device", device.type))
    for side, where in sides:
        out = tmp / f"segment_{side}"
        # Its own process: mmengine's visualizer is a process-wide instance that would log into the first run.
        done = subprocess.run([sys.executable, "-m", "probes.cli",
                               *_segment_args(str(encoder), data, "head", out, 4, 56, where), "--cfg-options",
                               *SEGMENT_SMALL, "precision=released", "default_hooks.logger.interval=1"],
                              capture_output=True, text=True, timeout=600, env=_env())
        if done.returncode:
            raise RuntimeError(f"probes segment on {where} failed:\n{done.stderr[-3000:]}")
        rows[side] = list(csv.DictReader(open(out / "segmentation.csv")))[0]
        losses[side] = _logged(out, "loss")
    took = time.perf_counter() - start
    rows.setdefault("device", rows["cpu"])
    losses.setdefault("device", losses["cpu"])
    # bf16 products differ between devices' kernels: ~3 significant digits on the loss after one forward;
    # 4 iterations on 2 images of 56 px can move a few pixels' argmax, hence points of mIoU.
    loss_diff = abs(losses["device"][0] - losses["cpu"][0]) / abs(losses["cpu"][0])
    last_diff = abs(losses["device"][-1] - losses["cpu"][-1]) / abs(losses["cpu"][-1])
    miou_diff = abs(float(rows["device"]["mIoU"]) - float(rows["cpu"]["mIoU"]))
    setting = (f"head tuning, precision=released, tiny 6B-style encoder, 4 iterations; {len(sides)} run(s) "
               f"{took:.0f} s; device row precision={rows['device']['precision']}")
    return [figure("segment tiny first loss, device vs CPU", loss_diff, "relative difference",
                   f"{setting}; tolerance 2e-2: {'within' if loss_diff <= 2e-2 else 'OUTSIDE'}"),
            figure("segment tiny last loss, device vs CPU", last_diff, "relative difference",
                   f"{setting}; after 3 updates; tolerance 5e-2: {'within' if last_diff <= 5e-2 else 'OUTSIDE'}"),
            figure("segment tiny mIoU, device vs CPU", miou_diff, "mIoU points",
                   f"{setting}; tolerance 5 points: {'within' if miou_diff <= 5 else 'OUTSIDE'}")]


def fsdp_one_process(device: torch.device, tmp: Path, tiny: bool, depth_6b: int) -> List[Figure]:
    """Full tuning under --strategy fsdp in one process: step time and peak memory as mmengine logs them."""
    from probes.testing.checkpoints import write_tiny_hf_encoder
    from probes.testing.launch import torchrun_probes
    from probes.testing.segmentation_data import band_scene, write_ade20k

    data = tmp / "seg_data" / "ADEChallengeData2016"
    if not data.is_dir():
        data = write_ade20k(tmp / "seg_data", band_scene([0, 1, 2, 3]), n_train=4, n_val=2)
    if tiny:
        encoder, crop, options = str(write_tiny_hf_encoder(tmp / "fsdp_encoder", style="6b", seed=0)), 56, SEGMENT_SMALL
    else:
        encoder, crop, options = "random:InternViT-6B-448px-V2_5", 504, [f"model.backbone.num_layers={depth_6b}"]
    out = tmp / "fsdp"
    iters = 2 if tiny else 5
    done = torchrun_probes([*_segment_args(encoder, data, "full", out, iters, crop, device.type), "--launcher",
                            "pytorch", "--strategy", "fsdp", "--cfg-options", *options,
                            "default_hooks.logger.interval=1"], cwd=tmp, nproc=1, timeout=900)
    if done.returncode:
        raise RuntimeError(f"probes segment --strategy fsdp (1 process) failed:\n{done.stderr[-3000:]}")
    logged = _logged(out, "time")
    times = logged[1:] or logged   # the first iteration carries the warm-up
    memory = _logged(out, "memory") if device.type == "cuda" else []
    shape = ("tiny 6B-style encoder, crop 56, heads 16/8 ch" if tiny else
             f"6B width 3200, {depth_6b} blocks, crop {crop}, heads at the released 1536 ch")
    setting = f"{shape}, batch 2, torchrun 1 process, median of {len(times)} iterations after the first"
    return [figure("segment full FSDP step (1 process)", statistics.median(times), "s/iter", setting),
            figure("segment full FSDP peak memory (1 process)", max(memory) / 1024 if memory else None, "GiB",
                   setting + ("" if memory else "; mmengine logs memory on CUDA only"))]


def figure(name: str, value: Optional[float], unit: str, setting: str) -> Figure:
    """One measured figure."""
    return {"name": name, "value": value, "unit": unit, "setting": setting}


def main() -> None:
    """Run every section, write the JSON and Markdown rows, print the summary line last."""
    args = parse_args()
    device = resolve_device(args.device)
    if args.tiny:
        torch.set_num_threads(1)
    name = device_name(device)
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections: List[Callable[[Path], List[Figure]]] = [
        lambda tmp: encoder_forward(device, args.tiny, args.depth_6b),
        lambda tmp: ours_vs_references(device, args.tiny),
        lambda tmp: classify_end_to_end(device, tmp),
        lambda tmp: device_crops(device, tmp, args.tiny),
        lambda tmp: jpeg_decode(device, tmp, args.tiny),
        lambda tmp: segmentation_steps(device, args.tiny),
        lambda tmp: segment_end_to_end(device, tmp),
        lambda tmp: fsdp_one_process(device, tmp, args.tiny, args.depth_6b),
    ]
    figures: List[Figure] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for section in sections:
            began = time.perf_counter()
            new = section(Path(tmp))
            for f in new:
                value = "n/a" if f["value"] is None else f"{f['value']:.4g}"
                print(f"{f['name']}: {value} {f['unit']} ({f['setting']})", flush=True)
            print(f"  [{time.perf_counter() - began:.0f} s]", flush=True)
            figures += new
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"date": when, "device": name, "tiny": args.tiny, "seconds": time.perf_counter() - start,
              "figures": figures}
    (args.out / "gpu_check.json").write_text(json.dumps(record, indent=1))
    rows = [f"| {when} | {name}{' (--tiny: toy sizes)' if args.tiny else ''} | {f['name']} | "
            f"{'n/a' if f['value'] is None else format(f['value'], '.4g')} | {f['unit']} | {f['setting']} |"
            for f in figures]
    (args.out / "gpu_check.md").write_text("| date | device | figure | value | unit | setting |\n"
                                           "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    print(f"total {record['seconds']:.0f} s; wrote {args.out / 'gpu_check.json'} and gpu_check.md")
    print(f"gpu_check ok figures={len(figures)}")


if __name__ == "__main__":
    main()
