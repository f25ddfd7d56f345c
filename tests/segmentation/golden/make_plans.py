"""The golden segmentation plans: every shipped config and a set of flag combinations, planned without weights.

`plan_segmentation(..., check_data=False).as_dict()` of each case (config, run id, protocol words, every
resolved fact), as exact text: tuples are kept apart from lists and key order is kept, because both reach
`--print-config` and mmengine. Machine-specific paths are replaced by `<configs>` and `<data>` (and
the run id's hash of a data folder is masked). Errors are
kept as their one-line message. The fixture stores a hash per case and the full text of `FULL` cases.

    PYTHONPATH=$PWD python tests/segmentation/golden/make_plans.py   # rewrites plans.json beside this file

tests/segmentation/test_golden_plans.py plans every case again and compares.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

FIXTURE = Path(__file__).with_name("plans.json")
V15 = "InternViT-6B-448px-V1-5"
TIMM16 = "timm:vit_tiny_patch16_224"        # patch 16, no weights: the generic configs, seeded random
TINY = {"model.decode_head.channels": 16, "model.auxiliary_head.channels": 8, "default_hooks.logger.interval": 1}
FULL = ("own/InternViT-6B-448px-V1-5/ade20k_head", "flags/demo-like", "flags/timm-crop-iters")

Case = Tuple[str, Dict[str, Any]]


def _shipped() -> List[Case]:
    from probes.config_files import config_dir

    root = config_dir("segmentation")
    cases: List[Case] = []
    for path in sorted(root.glob("*/*.py")) + sorted(root.glob("*.py")):
        if path.parent.name == "_base_" or path.parent.parent.name == "_base_":
            continue
        dataset, mode = path.stem.rsplit("_", 1)
        if path.parent == root:
            cases.append((f"generic/{path.stem}/timm16", dict(encoder=TIMM16, dataset=dataset, mode=mode)))
            cases.append((f"generic/{path.stem}/v15-config",
                          dict(encoder=V15, dataset=dataset, mode=mode, config=str(path))))
        else:
            cases.append((f"own/{path.parent.name}/{path.stem}", dict(encoder=path.parent.name, dataset=dataset,
                                                                      mode=mode)))
    return cases


FLAGS: List[Case] = [
    ("flags/crop-448", dict(encoder=V15, dataset="ade20k", mode="head", crop_size=448)),
    ("flags/crop-224-linear-coco", dict(encoder=V15, dataset="coco-stuff", mode="linear", crop_size=224)),
    ("flags/iters-100-full", dict(encoder=V15, dataset="ade20k", mode="full", iters=100)),
    ("flags/iters-1", dict(encoder=V15, dataset="ade20k", mode="head", iters=1)),
    ("flags/iters-200000", dict(encoder=V15, dataset="ade20k", mode="linear", iters=200000)),
    ("flags/batch-8", dict(encoder=V15, dataset="ade20k", mode="linear", batch_size=8)),
    ("flags/workers-0", dict(encoder=V15, dataset="ade20k", mode="head", workers=0)),
    ("flags/workers-2", dict(encoder=V15, dataset="coco-stuff", mode="full", workers=2)),
    ("flags/cfg-tiny", dict(encoder=V15, dataset="ade20k", mode="head", cfg_options=TINY)),
    ("flags/cfg-ema-hook", dict(encoder=V15, dataset="ade20k", mode="head",
                                cfg_options={"custom_hooks": [{"type": "EMAHook"}]})),
    ("flags/cfg-exempt-decay", dict(encoder=V15, dataset="ade20k", mode="full",
                                    cfg_options={"optim_wrapper.paramwise_cfg.exempt_embeddings_from_decay": True})),
    ("flags/cfg-out-indices", dict(encoder=V15, dataset="ade20k", mode="full",
                                   cfg_options={"model.backbone.out_indices": [3, 7, 11, 15]})),
    ("flags/cfg-scheduler-end", dict(encoder=V15, dataset="ade20k", mode="head", iters=50,
                                     cfg_options={"param_scheduler.1.end": 40, "train_cfg.val_interval": 10})),
    ("flags/cfg-precision-fp32", dict(encoder=V15, dataset="ade20k", mode="head",
                                      cfg_options={"precision": "autocast-fp32-weights"})),
    ("flags/strategy-ddp", dict(encoder=V15, dataset="ade20k", mode="full", strategy="ddp")),
    ("flags/strategy-fsdp", dict(encoder=V15, dataset="ade20k", mode="head", strategy="fsdp")),
    ("flags/device-cpu", dict(encoder=V15, dataset="ade20k", mode="full", device="cpu")),
    ("flags/launcher-pytorch-2", dict(encoder=V15, dataset="ade20k", mode="head", launcher="pytorch",
                                      batch_size=8, env={"WORLD_SIZE": "2"})),
    ("flags/timm-fsdp", dict(encoder=TIMM16, dataset="ade20k", mode="head", strategy="fsdp")),
    ("flags/cfg-loop-kwarg", dict(encoder=V15, dataset="ade20k", mode="head", cfg_options={"train_cfg.max_iter": 5})),
    ("flags/timm-crop-iters", dict(encoder=TIMM16, dataset="coco-stuff", mode="full", crop_size=256, iters=50,
                                   batch_size=4, workers=1)),
    ("flags/demo-like", dict(encoder="random:InternViT-6B-224px", dataset="coco-stuff", mode="full", crop_size=112,
                             iters=10, batch_size=2, workers=0, device="cpu", cfg_options=TINY,
                             protocol_label="demo")),
    ("flags/300m-crop-iters-batch", dict(encoder="InternViT-300M-448px", dataset="ade20k", mode="head",
                                         crop_size=336, iters=500, batch_size=4, strategy="ddp")),
    ("flags/data-ade20k", dict(encoder=V15, dataset="ade20k", mode="linear", data="ade20k", allow_subset=True,
                               iters=20)),
    ("flags/data-coco", dict(encoder=TIMM16, dataset="coco-stuff", mode="head", data="coco-stuff",
                             allow_subset=True, workers=0)),
    # The one-line errors, in the order the checks run.
    ("error/mode", dict(encoder=V15, dataset="ade20k", mode="probe")),
    ("error/crop-not-multiple", dict(encoder=V15, dataset="ade20k", mode="head", crop_size=500)),
    ("error/iters-0", dict(encoder=V15, dataset="ade20k", mode="head", iters=0)),
    ("error/template", dict(encoder=V15, dataset="ade20k", mode="head", cfg_options={"crop_size": (448, 448)})),
    ("error/set-from-encoder", dict(encoder=V15, dataset="ade20k", mode="head",
                                    cfg_options={"val_dataloader.dataset.pipeline.2.size_divisor": 16})),
    ("error/width", dict(encoder=V15, dataset="ade20k", mode="head", cfg_options={"model.neck.embed_dim": 1024})),
    ("error/module-kwarg", dict(encoder=V15, dataset="ade20k", mode="head",
                                cfg_options={"model.decode_head.chanels": 16})),
    ("error/config-mode", dict(encoder=V15, dataset="ade20k", mode="head", config="ade20k_linear")),
    ("error/deepspeed", dict(encoder=V15, dataset="ade20k", mode="full", strategy="deepspeed")),
    ("error/batch-split", dict(encoder=V15, dataset="ade20k", mode="head", batch_size=5, launcher="pytorch",
                               env={"WORLD_SIZE": "2"})),
    ("error/no-data", dict(encoder=V15, dataset="ade20k", mode="head", check_data=True)),
]


def cases() -> List[Case]:
    """Every golden case: (name, SegmentOptions fields plus `env`, `check_data` and data names)."""
    return _shipped() + FLAGS


def _tagged(value: Any) -> Any:
    """JSON-able with tuples told apart from lists (both reach mmengine and the printed config)."""
    if isinstance(value, dict):
        return {str(k): _tagged(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return {"__tuple__": [_tagged(v) for v in value]}
    if isinstance(value, list):
        return [_tagged(v) for v in value]
    if isinstance(value, Path):
        return {"__path__": str(value)}
    return value


def _data_root(kind: str, folder: Path) -> Path:
    from probes.testing import segmentation_data as data

    if kind == "ade20k":
        return data.write_ade20k(folder, data.band_scene([0, 1, 2, 3]), 2, 1)
    root = data.write_coco_stuff_raw(folder, data.band_scene([0, 12, 181, 255]), 2, 1)
    from probes.segmentation.coco_stuff import prepare_coco_stuff

    prepare_coco_stuff(root, workers=1)
    return root


def plan_text(fields: Dict[str, Any], data_dir: Path) -> str:
    """The case's plan as exact text (or `error: <Type>: <message>`), machine paths replaced."""
    from probes.config_files import config_dir
    from probes.errors import ProbeError
    from probes.segmentation.runner import SegmentOptions, plan_segmentation

    fields = dict(fields)
    env = fields.pop("env", {})
    check_data = fields.pop("check_data", False)
    data = fields.pop("data", None)
    if data is not None:
        fields["data"] = _data_root(data, data_dir / data)
        check_data = True
    config = fields.get("config")
    if config is not None and not Path(config).is_file():
        fields["config"] = config_dir("segmentation") / f"{config}.py"
    fields.setdefault("device", "cuda")   # the recipe's device, planned on any machine
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        plan = plan_segmentation(SegmentOptions(**fields), check_data=check_data).as_dict()
        plan.pop("set_by", None)   # added after the fixture was recorded (tested in test_plan.py)
        text = json.dumps(_tagged(plan), indent=1)
    except ProbeError as exc:
        text = f"error: {type(exc).__name__}: {exc}"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    text = text.replace(str(config_dir("segmentation")), "<configs>")
    if data is not None:
        text = text.replace(os.path.realpath(data_dir), "<data>").replace(str(data_dir), "<data>")
        # The run id hashes the data folder's real path, which is a temporary one here.
        text = re.sub(r'("run_id": "[^"]*_)[0-9a-f]{8}"', r'\1<hash of the data path>"', text)
    return text


def digest(text: str) -> str:
    """The hash a case is stored by."""
    return hashlib.sha256(text.encode()).hexdigest()


def all_plans(make: Callable[[Dict[str, Any], Path], str] = plan_text) -> Dict[str, str]:
    """Every case's text, planned in a fresh temporary data folder."""
    from probes.segmentation.runner import SegmentOptions, _prepare_runtime

    _prepare_runtime(SegmentOptions(encoder=V15, dataset="ade20k", mode="head"), require_device=False)
    with tempfile.TemporaryDirectory() as tmp:
        return {name: make(fields, Path(tmp)) for name, fields in cases()}


def main() -> None:
    """Write plans.json: a hash per case, the full text of the FULL cases."""
    plans = all_plans()
    fixture = {"hashes": {name: digest(text) for name, text in plans.items()},
               "full": {name: json.loads(plans[name]) for name in FULL}}
    FIXTURE.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"{len(plans)} cases ({sum(t.startswith('error:') for t in plans.values())} errors) -> {FIXTURE}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    main()
