"""The cost model: FLOPs of a tiny run equal a hand count; the encoder count equals torch's own; throughputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from probes.campaign import cost
from probes.classification.config import load_config
from probes.classification.plan import plan_classify
from probes.errors import ConfigError


def test_encoder_flops_equal_torchs_count_of_the_real_forward() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    from probes.testing.checkpoints import random_internvit, tiny_config

    model = random_internvit(tiny_config("300m"))   # width 48, MLP 192, 4 blocks, 4 heads, patch 14
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.forward_features(torch.randn(1, 3, 56, 56))
    # torch counts the patch convolution and every linear layer; its CPU attention kernel is not counted, so the
    # two attention products (QK^T and AV: 2 x 17 tokens^2 x 48 multiply-adds per block) are added here.
    attention = 4 * 2 * (2 * 17 * 17 * 48)
    shape = cost.EncoderShape(width=48, mlp=192, depth=4, heads=4, patch=14)
    assert shape.forward_flops(56) == counter.get_total_flops() + attention


def test_a_tiny_classify_run_costs_its_hand_count(tiny_encoders, imagenet_root, tmp_path) -> None:
    cfg = load_config("tiny_demo", {"encoder.source": str(tiny_encoders[0]), "data.root": str(imagenet_root),
                                    "runtime.out": str(tmp_path), "probe.probes": ["linear"], "probe.lrs": [0.1],
                                    "train.epochs": 3})
    plan = plan_classify(cfg)
    assert plan.heads == ("linear_published", "linear_lr0p1")
    # By hand. 56 px, patch 14: 16 patches + the class token = 17 tokens; width 48, MLP 192, 4 blocks.
    embed = 16 * 3 * 14 * 14 * 48                                  # patch embedding, multiply-adds
    block = 17 * (4 * 48 * 48 + 2 * 48 * 192) + 2 * 17 * 17 * 48   # qkv + proj, MLP, QK^T + AV
    encoder = 2 * (embed + 4 * block)                              # FLOPs = 2 per multiply-add
    assert encoder == 4_885_248
    head = 2 * (2 * 48) * 1000            # a linear head: class token ⊕ mean patch (96) -> 1000 classes
    heads = 2 * head                      # the published head and the lr-0.1 grid head
    train, evaluated = 16, 40             # images: the run's training set, and every evaluated image
    expected = (3 * train * encoder         # one backbone pass per epoch, forward only (frozen)
                + 3 * train * 3 * heads     # both heads, forward + backward, every epoch
                + 3 * evaluated * (encoder + heads))   # tiny_demo evaluates after every epoch
    found = cost.classify_cost(plan, train, evaluated, world=1)
    assert found.total_flops == expected
    assert found.flops["encoder forward, train"] == 3 * 16 * 4_885_248


def test_the_run_counts_images_as_the_run_reads_them(tiny_encoders, imagenet_root, tmp_path) -> None:
    from probes.campaign.planning import _classify_images
    from probes.classification.runner import load_data

    cfg = load_config("tiny_demo", {"encoder.source": str(tiny_encoders[0]), "data.root": str(imagenet_root),
                                    "runtime.out": str(tmp_path)})
    data = load_data(cfg.data, cfg.train.seed)
    train, evaluated, how = _classify_images(plan_classify(cfg), has_data=True)
    assert train == len(data.train.files) + len(data.heldout.files)
    assert evaluated == len(data.heldout.files) + sum(len(t.files) for t in data.tests) and how.endswith("on disk")


def test_default_throughput_is_a_stated_estimate_and_gpu_hours_follow() -> None:
    found = cost.default_throughput("H100", 0.4)
    assert found.flops_per_s == pytest.approx(0.4 * 989e12) and not found.measured
    assert "estimate" in found.basis and "not measured" in found.basis and "40%" in found.basis
    run = cost.Cost(flops={"all": 3600 * found.flops_per_s * 2.5})
    assert run.gpu_hours(found) == pytest.approx(2.5)
    with pytest.raises(ConfigError, match="no known bf16 peak"):
        cost.default_throughput("TPU")


def test_measured_throughput_reads_gpu_check_json(tmp_path) -> None:
    record = {"date": "2026-01-01 00:00 UTC", "device": "NVIDIA H100 80GB HBM3", "tiny": False,
              "figures": [{"name": "MFU 6B", "value": 0.5, "unit": "fraction", "setting": ""},
                          {"name": "MFU 300M", "value": 0.25, "unit": "fraction", "setting": ""}]}
    path = tmp_path / "gpu_check.json"
    path.write_text(json.dumps(record))
    six_b = cost.measured_throughput(path, width=3200)
    assert six_b.measured and six_b.flops_per_s == pytest.approx(0.5 * 989e12) and "measured" in six_b.basis
    assert cost.measured_throughput(path, width=1024).flops_per_s == pytest.approx(0.25 * 989e12)
    path.write_text(json.dumps({**record, "tiny": True}))
    with pytest.raises(ConfigError, match="toy sizes"):
        cost.measured_throughput(path, width=3200)


def test_segmentation_memory_shards_with_fsdp_and_partitions_with_zero1() -> None:
    from probes.campaign.launch import Resources
    from probes.campaign.matrix import table_runs
    from probes.campaign.planning import resolve_run
    from probes.campaign.launch import probes_argv

    spec = next(r for r in table_runs("15") if r.version.endswith("V1-5") and r.dataset == "ADE20K" and r.mode == "full")
    planned = resolve_run(probes_argv(spec, Path("/c"), None, Resources(8, 1)), spec.version, has_data=False)
    shape = cost.EncoderShape(3200, 12800, 45, 25, 14)
    params = shape.params(504)
    assert planned.plan.arrangement == "released"   # a GPU run's default (DDP; FSDP keeps the autocast one)
    sharded = cost.segment_cost(planned.plan, 2000, world=8, strategy="fsdp")
    assert sharded.memory["encoder weights, grads, AdamW state (fp32)"] == pytest.approx(params * 16 / 8)
    # The released update under DDP: bf16 weights and gradients everywhere, fp32 masters and AdamW state
    # partitioned over the 8 GPUs (ZeRO-1): it fits 80 GB without FSDP; replicated, or on one GPU, it does not.
    zero1 = cost.segment_cost(planned.plan, 2000, world=8, strategy="none")
    assert zero1.memory["encoder weights and grads (bf16)"] == pytest.approx(params * 4)
    assert zero1.memory["encoder fp32 masters and AdamW state (ZeRO-1: 1/8 per GPU)"] == pytest.approx(params * 12 / 8)
    one_gpu = cost.segment_cost(planned.plan, 2000, world=1, strategy="none")
    planned.plan.cfg.optim_wrapper.partition = False
    replicated = cost.segment_cost(planned.plan, 2000, world=8, strategy="none")
    assert replicated.memory["encoder fp32 masters and AdamW state"] == pytest.approx(params * 12)
    assert replicated.peak_memory_gib > 80 and one_gpu.peak_memory_gib > 80
    assert zero1.peak_memory_gib < 80 and sharded.peak_memory_gib < 80
    unsharded = zero1
    # tuned: forward + backward + the recomputed forward (gradient checkpointing) of the 45-block encoder
    assert unsharded.flops["encoder forward+backward, train"] == 80000 * 16 * 4 * shape.forward_flops(504)
