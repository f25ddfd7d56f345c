"""What a run costs, estimated from its plan: FLOPs (2 per multiply-add), GPU-hours and peak memory per GPU.

FLOPs count the matrix products and convolutions (elementwise work, norms and softmax are left out): the
encoder as `benchmarks/gpu_check.py` counts it (patch embedding, qkv/projection, MLP, the two attention
products), once per image per backbone pass; a frozen encoder runs forward only (every head of a sweep reads the
same pass), a tuned one forward + backward (2x forward) + the forward again under gradient checkpointing. Heads
train forward + backward. GPU-hours divide by a throughput that is measured (gpu_check.json's MFU of the encoder
forward on its device) or a stated default utilisation of a stated device's peak; they are estimates and say so.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from probes.errors import ConfigError

GIB = 1024 ** 3
# Dense bf16 tensor-core peaks (FLOP/s) and memory (GiB) by a substring of the device's name (longest match wins).
DEVICES: Dict[str, tuple[float, float]] = {
    "H200": (989e12, 141.0), "H100 PCIe": (756e12, 80.0), "H100": (989e12, 80.0), "A100": (312e12, 80.0),
    "L40S": (362e12, 48.0)}
DEFAULT_DEVICE = "H100"
DEFAULT_UTILISATION = 0.40     # a stated assumption, used only when no gpu_check.json is given
VAL_ASPECT = 4 / 3             # sliding-window evaluation: images taken as 4:3, short side at the crop


def device_spec(name: str) -> tuple[str, float, float]:
    """(known name, bf16 peak FLOP/s, memory GiB) of a device named like `H100` or 'NVIDIA H100 80GB HBM3'."""
    found = sorted((k for k in DEVICES if k.lower() in name.lower()), key=len, reverse=True)
    if not found:
        raise ConfigError(f"device {name!r}: no known bf16 peak (known: {', '.join(DEVICES)})")
    return (found[0], *DEVICES[found[0]])


@dataclass(frozen=True)
class Throughput:
    """Sustained FLOP/s of one GPU, and where that figure comes from."""

    flops_per_s: float
    device: str
    memory_gib: float
    basis: str
    measured: bool = False

    def as_dict(self) -> Dict[str, Any]:
        """Plain data for plan.json."""
        return {"flops_per_s": self.flops_per_s, "device": self.device, "memory_gib": self.memory_gib,
                "basis": self.basis, "measured": self.measured}


def default_throughput(device: str = DEFAULT_DEVICE, utilisation: float = DEFAULT_UTILISATION,
                       memory_gib: Optional[float] = None) -> Throughput:
    """A stated utilisation of a stated device's dense bf16 peak (not measured)."""
    if not 0 < utilisation <= 1:
        raise ConfigError(f"--utilisation {utilisation} must be in (0, 1]")
    name, peak, memory = device_spec(device)
    return Throughput(utilisation * peak, name, memory_gib or memory,
                      f"estimate: assumed {utilisation:.0%} of the {name} dense bf16 peak ({peak / 1e12:.0f} TFLOP/s), "
                      "not measured")


def measured_throughput(path: Path, width: int, memory_gib: Optional[float] = None) -> Throughput:
    """The utilisation `benchmarks/gpu_check.py` measured (MFU of the encoder forward nearest in width) x the peak."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--throughput {path}: not a readable gpu_check.json ({exc})") from None
    if record.get("tiny"):
        raise ConfigError(f"--throughput {path}: written by gpu_check.py --tiny (toy sizes), not a throughput")
    name, peak, memory = device_spec(str(record.get("device", "")))
    label = "MFU 6B" if width >= 2048 else "MFU 300M"
    mfu = next((f.get("value") for f in record.get("figures", []) if f.get("name") == label), None)
    if not mfu:
        raise ConfigError(f"--throughput {path}: no {label!r} figure (gpu_check.py measures it on a known GPU)")
    return Throughput(float(mfu) * peak, name, memory_gib or memory,
                      f"measured utilisation {float(mfu):.2f} ({label}, encoder forward, gpu_check.json of "
                      f"{record.get('device')} on {record.get('date', '?')}) x {peak / 1e12:.0f} TFLOP/s; still "
                      "an estimate for training steps", measured=True)


@dataclass(frozen=True)
class EncoderShape:
    """The sizes that set an encoder's cost."""

    width: int
    mlp: int
    depth: int          # blocks that run
    heads: int
    patch: int
    prefix: int = 1     # class token

    def tokens(self, size: int) -> int:
        """Tokens of a square input."""
        return (size // self.patch) ** 2 + self.prefix

    def forward_flops(self, size: int) -> float:
        """One image, forward: patch embedding, qkv + projection, MLP, QK^T and AV (gpu_check.py MFU uses it too)."""
        c, n, patches = self.width, self.tokens(size), (size // self.patch) ** 2
        embed = patches * 3 * self.patch ** 2 * c
        block = n * (4 * c * c + 2 * c * self.mlp) + 2 * n * n * c
        return 2.0 * (embed + self.depth * block)

    def params(self, size: int) -> int:
        """Parameters: patch embedding, position embedding, class token, blocks (weights, biases, norms)."""
        c = self.width
        block = 4 * c * c + 4 * c + 2 * c * self.mlp + self.mlp + c + 6 * c   # qkv/proj, MLP, 2 norms, 2 scales
        return 3 * self.patch ** 2 * c + c + self.tokens(size) * c + c + self.depth * block

    def working_set(self, batch: int, size: int) -> float:
        """Bytes of one block's activations in 16-bit (residual, normed input, qkv, MLP hidden; flash attention)."""
        return 2.0 * batch * self.tokens(size) * (6 * self.width + self.mlp)


def encoder_shape(info: Any, depth: int) -> tuple[EncoderShape, str]:
    """The shape of a described encoder, and what had to be assumed ('' if nothing)."""
    from probes.encoders.versions import VERSIONS

    known = VERSIONS.get(info.config_version or "")
    mlp = known.intermediate_size if known is not None else 4 * info.embed_dim
    note = "" if known is not None else "MLP width taken as 4x the encoder width"
    return EncoderShape(int(info.embed_dim), int(mlp), int(depth), int(info.num_heads or 1),
                        int(info.patch_size or 14)), note


@dataclass
class Cost:
    """A run's estimated FLOPs (by part), peak memory per GPU (by part, bytes), and the assumptions made."""

    flops: Dict[str, float] = field(default_factory=dict)
    memory: Dict[str, float] = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def total_flops(self) -> float:
        """All parts."""
        return sum(self.flops.values())

    @property
    def peak_memory_gib(self) -> float:
        """All memory parts, in GiB."""
        return sum(self.memory.values()) / GIB

    def gpu_hours(self, throughput: Throughput) -> float:
        """GPU-hours at that throughput (summed over GPUs: perfect scaling assumed)."""
        return self.total_flops / throughput.flops_per_s / 3600


def linear_head_flops(in_dim: int, classes: int) -> float:
    """Forward FLOPs of one linear probe head per image."""
    return 2.0 * in_dim * classes


def attention_head_flops(shape: EncoderShape, tokens: int, classes: int) -> float:
    """Forward FLOPs of one attention-pooling head per image (its one-query form, probes.classification.heads)."""
    c = shape.width
    return 2.0 * (4 * c * c + 2 * shape.heads * tokens * c + c * classes)


def classify_cost(plan: Any, train_images: int, eval_images: int, world: int) -> Cost:
    """One `probes classify` run: every epoch one backbone pass over train feeding every head; evaluations."""
    cfg = plan.cfg
    shape, note = encoder_shape(plan.encoder.info, plan.blocks_used)
    size, classes = plan.preprocessing.size, cfg.probe.num_classes
    n = shape.tokens(size)
    head_fwd = 0.0
    for key in plan.heads:
        probe = "attention_pooling" if key.startswith("attention") else "linear"
        head_fwd += (attention_head_flops(shape, n, classes) if probe == "attention_pooling"
                     else linear_head_flops((2 if shape.prefix else 1) * shape.width, classes))
    epochs = cfg.cache.epochs if plan.cached else cfg.train.epochs
    evaluations = epochs if cfg.train.eval_every_epoch and not plan.cached else 1
    backbone = shape.forward_flops(size)
    passes = 1 if plan.cached else epochs       # a feature cache passes the backbone once
    cost = Cost(notes=[note] if note else [])
    cost.flops["encoder forward, train"] = passes * train_images * backbone
    cost.flops["heads forward+backward, train"] = epochs * train_images * 3 * head_fwd
    cost.flops["evaluation"] = evaluations * eval_images * (backbone + head_fwd)
    batch = max(1, math.ceil(cfg.train.batch_size / world))
    weight_bytes = 2 if plan.precision == "bf16" else 4
    head_params = sum((4 * shape.width ** 2 + shape.width * classes) if k.startswith("attention")
                      else 2 * shape.width * classes for k in plan.heads)
    cost.memory["encoder weights"] = shape.params(size) * weight_bytes
    cost.memory["heads: weights, grads, momentum, EMA"] = head_params * 16
    cost.memory["activations (one block + tokens kept for the heads)"] = (
        shape.working_set(batch, size) + 2.0 * batch * n * shape.width)
    return cost


def _conv(k: int, cin: int, cout: int, side: int) -> float:
    return 2.0 * k * k * cin * cout * side * side


def _head_parts(model: Any, width: int, grid: int, classes: int) -> tuple[float, float, int, float, str]:
    """(decode head forward, auxiliary head forward, trainable params, activation elements, note) per crop."""
    decode, aux, neck = model.get("decode_head") or {}, model.get("auxiliary_head") or {}, model.get("neck")
    kind = decode.get("type")
    if kind == "LinearProbeHead":
        return _conv(1, width, classes, grid), 0.0, width * classes + 2 * width, 2.0 * width * grid ** 2, ""
    if kind != "UPerHead":
        return 0.0, 0.0, 0, 0.0, f"decode head {kind} not counted"
    ch, sides = int(decode["channels"]), [4 * grid, 2 * grid, grid, max(1, grid // 2)]
    flops = params = acts = 0.0
    if neck:   # ViTPyramidNeck: 2x2 stride-2 transposed convs to x4 (two) and x2 (one)
        flops += 2.0 * width * width * (sides[1] ** 2 + sides[0] ** 2 + sides[1] ** 2)
        params += 3 * 4 * width * width
        acts += width * (2 * sides[0] ** 2 + 2 * sides[1] ** 2)
    scales = tuple(decode.get("pool_scales", (1, 2, 3, 6)))
    flops += sum(_conv(1, width, ch, s) for s in scales) + _conv(3, width + len(scales) * ch, ch, sides[3])
    params += len(scales) * width * ch + 9 * (width + len(scales) * ch) * ch
    for side in sides[:3]:
        flops += _conv(1, width, ch, side) + _conv(3, ch, ch, side)
        params += width * ch + 9 * ch * ch
        acts += 3 * 2 * ch * side ** 2          # conv, BN and ReLU outputs kept for backward
    flops += _conv(3, 4 * ch, ch, sides[0]) + _conv(1, ch, classes, sides[0])
    params += 9 * 4 * ch * ch + ch * classes
    acts += 4 * ch * sides[0] ** 2 + 3 * ch * sides[0] ** 2 + classes * sides[0] ** 2
    aux_flops = 0.0
    if aux:
        side, aux_ch = sides[int(aux.get("in_index", 1))], int(aux["channels"])
        convs = int(aux.get("num_convs", 1))
        aux_flops = _conv(3, width, aux_ch, side) + _conv(3, aux_ch, aux_ch, side) * (convs - 1) + _conv(
            1, aux_ch, classes, side)
        params += 9 * width * aux_ch + 9 * aux_ch * aux_ch * (convs - 1) + aux_ch * classes
        acts += 3 * convs * aux_ch * side ** 2
    return flops, aux_flops, int(params), acts, ""


def windows_per_image(crop: int, stride: int) -> int:
    """Sliding windows of one validation image (4:3, short side at the crop)."""
    long_side = round(crop * VAL_ASPECT)
    return max(0, math.ceil((long_side - crop) / stride)) + 1


def segment_cost(plan: Any, val_images: int, world: int, strategy: str) -> Cost:
    """One `probes segment` run: iterations x batch crops, then the periodic sliding-window evaluations."""
    cfg, info = plan.cfg, plan.encoder.info
    backbone = cfg.model.backbone
    depth_in_model = int(backbone.get("num_layers") or info.num_layers)
    depth = max(i if i >= 0 else depth_in_model + i for i in backbone.out_indices) + 1   # pruned after the last
    shape, note = encoder_shape(info, depth)
    crop, grid = plan.crop, plan.crop // shape.patch
    classes = int(cfg.model.decode_head.num_classes)
    decode, aux, head_params, head_acts, head_note = _head_parts(cfg.model, shape.width, grid, classes)
    full = bool(backbone.get("trainable", False))
    checkpointing = bool(backbone.get("grad_checkpointing", False))
    crops = plan.iters * plan.total_batch
    backbone_fwd = shape.forward_flops(crop)
    cost = Cost(notes=[n for n in (note, head_note) if n])
    # Tuned: forward, backward (2x), and under gradient checkpointing each block's forward once more.
    factor = (3 + (1 if checkpointing else 0)) if full else 1
    cost.flops["encoder " + ("forward+backward" if full else "forward") + ", train"] = crops * factor * backbone_fwd
    cost.flops["neck and heads forward+backward, train"] = crops * 3 * (decode + aux)
    interval = int(cfg.train_cfg.get("val_interval", plan.iters)) or plan.iters
    evaluations = plan.iters // interval + (1 if plan.iters % interval else 0)
    stride = int(cfg.model.test_cfg.stride[0])
    cost.flops["evaluation (sliding windows)"] = (evaluations * val_images * windows_per_image(crop, stride)
                                                 * (backbone_fwd + decode))
    batch = max(1, math.ceil(plan.total_batch / world))
    shards = world if strategy in ("fsdp", "deepspeed") else 1
    params = shape.params(crop)
    # The released update (precision='released', DDP): bf16 weights and gradients on every GPU, fp32 masters
    # and AdamW state (12 bytes) on their owner only when partitioned (ZeRO-1, the default on several GPUs).
    released = getattr(plan, "arrangement", None) == "released" and strategy == "none"
    owners = world if released and world > 1 and cfg.optim_wrapper.get("partition", True) else 1
    if full and released:
        cost.memory["encoder weights and grads (bf16)"] = params * 4
        cost.memory["encoder fp32 masters and AdamW state" + (f" (ZeRO-1: 1/{owners} per GPU)" if owners > 1
                                                              else "")] = params * 12 / owners
    elif full:
        cost.memory["encoder weights, grads, AdamW state (fp32)"] = params * 16 / shards
        if shards > 1:
            cost.memory["one gathered block (fp32)"] = 2 * (params / depth) * 4
    if full:
        kept = depth * 4.0 * batch * shape.tokens(crop) * shape.width if checkpointing else \
            depth * shape.working_set(batch, crop)
        cost.memory["encoder activations" + (" (block inputs; gradient checkpointing)" if checkpointing else "")] = (
            kept + shape.working_set(batch, crop))
    else:
        cost.memory["encoder weights (bf16, frozen)"] = params * 2
        cost.memory["encoder activations (one block, no grad)"] = shape.working_set(batch, crop)
    cost.memory["neck and heads: weights, grads, AdamW state"] = (
        head_params * (8 + 12 / owners) if released and full else head_params * 16 / shards)
    cost.memory["neck and heads activations (16-bit)"] = 2.0 * batch * head_acts
    return cost
