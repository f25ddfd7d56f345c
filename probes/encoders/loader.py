"""`load_encoder`: turn any source (folder, file, version, hub id, timm name, random) into a ready encoder."""
from __future__ import annotations

import logging
import re
from collections import defaultdict
from typing import Optional, Union

import torch
from torch import nn

from probes.encoders.checkpoint import CheckpointSpec, checkpoint_spec
from probes.encoders.fingerprint import files_fingerprint, seed_fingerprint
from probes.encoders.internvit import InternViT
from probes.encoders.keymaps import Target, encoder_keys, find_layout
from probes.encoders.preprocessing import read_preprocessor_config
from probes.encoders.source import RANDOM_SEED, EncoderSource, PathLike, parse_source
from probes.encoders.tensor_files import TensorInfo, open_tensor_file
from probes.encoders.timm_encoder import load_timm_encoder
from probes.encoders.versions import VERSIONS
from probes.errors import CheckpointError
from probes.runtime import resolve_device, resolve_dtype

log = logging.getLogger(__name__)

_BLOCK_KEY = re.compile(r"^encoder\.layers\.(\d+)\.")
_LIST_LIMIT = 8
Plan = dict[str, list[tuple[TensorInfo, Target]]]


def _short_list(keys: set[str]) -> str:
    shown = sorted(keys)[:_LIST_LIMIT]
    more = f" (+{len(keys) - _LIST_LIMIT} more)" if len(keys) > _LIST_LIMIT else ""
    return ", ".join(shown) + more


def _plan(spec: CheckpointSpec, handles: list, model: nn.Module) -> Plan:
    """Map every checkpoint tensor to (a row block of) a model tensor; refuse any mismatch before reading."""
    infos = {info.key: info for handle in handles for info in handle.tensors.values()}
    targets = encoder_keys(infos, spec.where)
    layout = find_layout(infos)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    plan: Plan = defaultdict(list)
    dropped: set[int] = set()
    for key, target in targets.items():
        block = _BLOCK_KEY.match(target.name)
        if block and target.name not in expected and int(block.group(1)) >= model.num_layers:
            dropped.add(int(block.group(1)))
            continue
        plan[target.name].append((infos[key], target))
    for name, pieces in plan.items():
        if len({t.part for _, t in pieces}) != len(pieces):
            keys = ", ".join(sorted(info.key for info, _ in pieces))
            raise CheckpointError(f"checkpoint {spec.where}: {keys} all fill {name}; keep one of them")
    complete = {name for name, pieces in plan.items() if {t.part for _, t in pieces} == set(range(pieces[0][1].parts))}
    missing, unexpected = set(expected) - complete, set(plan) - set(expected)
    if missing or unexpected:
        parts = [f"missing {len(missing)} key(s): {_short_list(missing)}" if missing else "",
                 f"unexpected {len(unexpected)} key(s): {_short_list(unexpected)}" if unexpected else ""]
        raise CheckpointError(
            f"checkpoint {spec.where} ({layout} layout) does not match its architecture "
            f"(hidden {spec.config.hidden_size}, {model.num_layers} blocks): " + "; ".join(p for p in parts if p))
    wrong = {}
    for name, pieces in plan.items():
        rows = expected[name][0] // pieces[0][1].parts if expected[name] else 0
        want = expected[name] if pieces[0][1].parts == 1 else (rows, *expected[name][1:])
        wrong.update({info.key: (info.shape, want) for info, _ in pieces if info.shape != want})
    if wrong:
        key = sorted(wrong)[0]
        raise CheckpointError(
            f"checkpoint {spec.where}: {len(wrong)} tensor(s) have the wrong shape, e.g. {key} is "
            f"{list(wrong[key][0])} but the architecture needs {list(wrong[key][1])}")
    if dropped:
        log.info("%s: dropping blocks %d-%d of %d on purpose (using the first %d)", spec.where,
                 min(dropped), max(dropped), spec.config.num_hidden_layers, model.num_layers)
    log.debug("%s: %s layout, %d tensors in %d file(s)", spec.where, layout, len(targets), len(handles))
    return plan


def load_internvit(spec: CheckpointSpec, num_layers: Optional[int] = None, dtype: torch.dtype = torch.float32,
                   device: torch.device = torch.device("cpu"), drop_path_rate: Optional[float] = None) -> InternViT:
    """Build the architecture without memory, then stream each tensor straight into (its rows of) a parameter."""
    depth = spec.config.num_hidden_layers
    if num_layers is not None and not 0 < num_layers <= depth:
        raise CheckpointError(f"num_layers={num_layers} is outside 1..{depth} for {spec.where}")
    handles = [open_tensor_file(f) for f in spec.files]  # headers only: every shard checked first
    with torch.device("meta"):
        model = InternViT(spec.config, num_layers=num_layers, drop_path_rate=drop_path_rate)
    plan = _plan(spec, handles, model)
    model = model.to(dtype=dtype).to_empty(device=device)
    params = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for handle in handles:
            infos, targets = [], []
            for name, pieces in plan.items():
                for info, target in pieces:
                    if info.file != handle.path:
                        continue
                    data = params[name].data
                    if target.parts > 1:  # q, k, v each fill their own rows of qkv: no merged copy is built
                        rows = data.shape[0] // target.parts
                        data = data.narrow(0, target.part * rows, rows)
                    infos.append(info)
                    targets.append(data)
            handle.read_into(infos, targets)
    return model


def random_internvit(version: str, num_layers: Optional[int] = None, drop_path_rate: Optional[float] = None,
                     seed: int = RANDOM_SEED) -> InternViT:
    """A published version's architecture with seeded random weights (builds on the ambient device, e.g. meta)."""
    depth = VERSIONS[version].num_hidden_layers
    if num_layers is not None and not 0 < num_layers <= depth:
        raise CheckpointError(f"num_layers={num_layers} is outside 1..{depth} for random:{version}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = InternViT(VERSIONS[version], num_layers=num_layers, drop_path_rate=drop_path_rate)
    encoder.version, encoder.name = version, f"random:{version}"
    encoder.source, encoder.fingerprint = f"random init (seed {seed})", seed_fingerprint(f"random:{version}", seed)
    return encoder


def load_encoder(source: Union[PathLike, EncoderSource], *, version: Optional[str] = None,
                 weights: Optional[PathLike] = None, revision: Optional[str] = None,
                 num_layers: Optional[int] = None, dtype: Union[str, torch.dtype, None] = None,
                 device: Union[str, torch.device, None] = "cpu", drop_path_rate: Optional[float] = None,
                 trainable: bool = False, checkpoint: Optional[CheckpointSpec] = None) -> nn.Module:
    """Load an encoder from a folder, file + version, `VERSION=PATH`, hub id, `timm:<name>[.<tag>]` or `random:VERSION`.

    Frozen (eval mode, no grad) unless `trainable`. Default dtype: bf16 for a frozen encoder on
    GPU, float32 otherwise. See `parse_source` for what each source means. `checkpoint`: the source's
    checkpoint as a run's plan found it (`ResolvedEncoder.checkpoint`), so its files are not looked up again.
    """
    src = parse_source(source, version, weights, revision)
    target = resolve_device(device)
    storage = resolve_dtype(dtype, target, trainable)
    if src.kind == "timm":
        encoder = load_timm_encoder(src, num_layers=num_layers, drop_path_rate=drop_path_rate)
        encoder = encoder.to(device=target, dtype=storage)
    elif src.kind == "random":
        encoder = random_internvit(src.version, num_layers, drop_path_rate).to(dtype=storage)
        if next(encoder.parameters()).device.type != "meta":  # under a meta-device context it stays there
            encoder = encoder.to(device=target)
    else:
        spec = checkpoint or checkpoint_spec(src)
        encoder = load_internvit(spec, num_layers, storage, target, drop_path_rate)
        encoder.version, encoder.name, encoder.source = spec.version, spec.name, spec.where
        encoder.fingerprint = files_fingerprint(spec.files)
        if spec.preprocessor is not None:
            encoder.data_config = read_preprocessor_config(spec.preprocessor, encoder.data_config)
        log.info("loaded %s from %s: %d blocks, %.1fM params, %s on %s, weights %s", encoder.name, spec.where,
                 encoder.num_layers, sum(p.numel() for p in encoder.parameters()) / 1e6, storage, target,
                 encoder.fingerprint)
    if not trainable:
        encoder.requires_grad_(False).eval()
    else:
        encoder.train()
    return encoder
