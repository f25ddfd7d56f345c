"""`probes demo`: the whole pipeline on tiny encoders and tiny real-image data, no download.

Every step goes through the same library calls as a real run (`load_encoder` on Hugging Face
folders, `probes classify`'s runner on ImageNet-layout folders, `probes prepare` and
`probes segment` on ADE20K / raw COCO-Stuff folders, `probes report`); only the sizes are tiny.
Every row says `protocol=demo`.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from probes.demo.datasets import write_ade20k, write_coco_stuff_raw
from probes.demo.images import DigitPool, digit_image

if TYPE_CHECKING:
    from probes.report.build import Report

log = logging.getLogger(__name__)

# Two versions of one tiny encoder (300M style) that differ in training: the comparison has meaning.
ENCODERS = {"tiny-internvit-v1": 150, "tiny-internvit-v2": 600}  # name -> training steps
PROTOCOL = "demo"
CLASSIFY_OPTIONS = {  # on top of configs/classification/tiny_demo.py
    "data.heldout_per_class": 4, "train.epochs": 10, "train.batch_size": 16, "train.eval_batch_size": 64,
    "probe.lrs": [2.0, 8.0], "runtime.protocol_label": PROTOCOL}
SMALL_UPERNET = {"model.decode_head.channels": 32, "model.auxiliary_head.channels": 16}  # for a 48-wide encoder
SEGMENT_OPTIONS = {
    "optim_wrapper.optimizer.lr": 1e-3,  # the recipe's 4e-5 is for 80k iterations, not a few dozen
    "train_dataloader.num_workers": 0, "train_dataloader.persistent_workers": False,
    "val_dataloader.num_workers": 0, "val_dataloader.persistent_workers": False,
    "default_hooks.logger.interval": 10,
    "log_level": "ERROR"}  # mmengine's per-class tables and environment dump would bury the demo's own output


def _digit_images(classes: list[int], seed: int) -> Callable:
    """An image function for the ImageNet writer: class k of `classes` shows handwritten digit k."""
    pool = DigitPool(seed)
    digit_of = {cls: k for k, cls in enumerate(classes)}
    return lambda cls, rng, size: digit_image(pool, digit_of[cls], size[0], rng)


def write_data(data: Path, seed: int = 0) -> dict[str, Path]:
    """The six ImageNet-family sets (10 classes, quirks included), ADE20K and converted COCO-Stuff."""
    from probes.testing.imagenet_data import shared_a_r_classes, write_imagenet_root
    from probes.segmentation.coco_stuff import prepare_coco_stuff

    classes = shared_a_r_classes(10)  # in IN-A and IN-R too, so every set has all ten
    imagenet = data / "imagenet"
    write_imagenet_root(imagenet, classes, train_per_class=24, val_per_class=4, other_per_class=3,
                        size=(56, 56), seed=seed, image_fn=_digit_images(classes, seed))
    ade20k = write_ade20k(data)
    coco = write_coco_stuff_raw(data)
    prepare_coco_stuff(coco, workers=1)
    return {"imagenet": imagenet, "ade20k": ade20k, "coco-stuff": coco}


def run_demo(out: Path, seg_iters: int = 60) -> Report:
    """Write encoders and data under `out`, run both probe families and the report; return the report."""
    from probes.classification.config import load_config
    from probes.classification.runner import run_classify
    from probes.report.build import build_report
    from probes.segmentation.runner import SegmentOptions, run_segmentation
    from probes.demo.pretrain import pretrained_tiny_encoder
    from probes.testing.checkpoints import save_hf_folder

    out = Path(out)
    start = time.perf_counter()
    encoders = {}
    for name, steps in ENCODERS.items():
        model = pretrained_tiny_encoder("300m", steps)
        encoders[name] = save_hf_folder(model.state_dict(), model.config, out / "encoders" / name)
    data = write_data(out / "data")
    log.info("demo: encoders and data written in %.0fs", time.perf_counter() - start)
    results = out / "results"
    for name, folder in encoders.items():
        cfg = load_config("tiny_demo", {"encoder.source": str(folder), "data.root": str(data["imagenet"]),
                                        "runtime.out": str(results / "classification"), **CLASSIFY_OPTIONS})
        run_classify(cfg)
        for dataset in ("ade20k", "coco-stuff"):
            for mode in ("linear", "head", "full"):
                run_segmentation(SegmentOptions(
                    encoder=str(folder), dataset=dataset, data=data[dataset], mode=mode,
                    cfg_options={**SEGMENT_OPTIONS, **(SMALL_UPERNET if mode != "linear" else {})}, iters=seg_iters, batch_size=4, crop_size=56,
                    device="cpu", workers=0, out=results / "segmentation", protocol_label=PROTOCOL))
        log.info("demo: %s probed (%.0fs so far)", name, time.perf_counter() - start)
    return build_report(results, out / "report", formats={"md", "csv"})
