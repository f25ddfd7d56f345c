"""Model pieces: backbone freezing, pyramid neck, linear head, layer-wise lr decay, 6B parameter counts."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from probes.config_files import config_dir
from probes.segmentation.mm_compat import import_mmseg

import_mmseg()

from mmengine.registry import init_default_scope  # noqa: E402

init_default_scope("mmseg")   # what the Runner does for configs with default_scope = 'mmseg'

from mmengine.config import Config  # noqa: E402
from mmseg.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402

from probes.segmentation import config_fill  # noqa: E402
from probes.runtime import count_trainable  # noqa: E402
from probes.encoders import EncoderInfo  # noqa: E402
from probes.segmentation.layer_decay import layer_id  # noqa: E402
from probes.segmentation.models.neck import ViTPyramidNeck  # noqa: E402
from probes.batchnorm import GlobalBatchNorm  # noqa: E402

CONFIGS = config_dir("segmentation")


def _info(embed_dim: int, num_layers: int, version: str) -> EncoderInfo:
    """What describe_source says of an InternViT of this shape (patch 14, ImageNet statistics)."""
    return EncoderInfo(embed_dim, num_layers, version, patch_size=14, mean=(0.485, 0.456, 0.406),
                       std=(0.229, 0.224, 0.225))


def _model_cfg(mode: str, source: str, info: EncoderInfo, dataset: str = "ade20k", **backbone) -> Config:
    cfg = Config.fromfile(str(CONFIGS / f"{dataset}_{mode}.py"))
    cfg.model.backbone.source = source
    cfg.model.backbone.update(backbone)
    config_fill.fill_encoder(cfg, mode, info)
    for head in ("decode_head", "auxiliary_head"):
        if head in cfg.model:
            cfg.model[head].norm_cfg = dict(type="GlobalSyncBN", requires_grad=True)   # as on CPU
    return cfg


def _tiny_model(mode: str, tiny_encoder: Path, channels: int = 16):
    cfg = _model_cfg(mode, str(tiny_encoder), _info(48, 4, "custom"), input_size=56)
    cfg.model.data_preprocessor.size = (56, 56)
    if mode != "linear":
        cfg.model.decode_head.channels = channels
        cfg.model.auxiliary_head.channels = channels
    return MODELS.build(cfg.model), cfg


def _batch(n: int = 2, size: int = 56) -> tuple[torch.Tensor, list]:
    torch.manual_seed(0)
    samples = []
    for _ in range(n):
        sample = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 150, (1, size, size))))
        sample.set_metainfo({"img_shape": (size, size), "pad_shape": (size, size), "ori_shape": (size, size)})
        samples.append(sample)
    return torch.randn(n, 3, size, size), samples


@pytest.mark.parametrize("mode", ["linear", "head"])
def test_frozen_modes_keep_gradients_off_the_backbone(mode: str, tiny_encoder: Path) -> None:
    model, _ = _tiny_model(mode, tiny_encoder)
    model.train()
    assert not model.backbone.encoder.training   # frozen encoder stays in eval mode (no drop path)
    images, samples = _batch()
    losses = model.loss(images, samples)
    sum(v for k, v in losses.items() if "loss" in k).backward()
    assert all(p.grad is None and not p.requires_grad for p in model.backbone.parameters())
    head_grads = [p.grad for p in model.decode_head.parameters() if p.requires_grad]
    assert head_grads and all(g is not None for g in head_grads)


def test_full_mode_trains_the_backbone_with_drop_path(tiny_encoder: Path) -> None:
    model, cfg = _tiny_model("full", tiny_encoder)
    assert cfg.model.backbone.drop_path_rate == 0.4
    model.train()
    images, samples = _batch()
    sum(v for k, v in model.loss(images, samples).items() if "loss" in k).backward()
    grads = [p.grad for p in model.backbone.parameters()]
    assert grads and all(g is not None for g in grads)
    assert any("drop_path" in n and type(m).__name__ == "DropPath" for n, m in model.backbone.named_modules())


def test_released_precision_holds_bf16_backbone_and_neck_and_fp32_heads(tiny_encoder: Path) -> None:
    cfg = _model_cfg("full", str(tiny_encoder), _info(48, 4, "custom"), input_size=56)
    cfg.model.data_preprocessor.size = (56, 56)
    cfg.model.decode_head.channels = cfg.model.auxiliary_head.channels = 8
    model = MODELS.build(dict(cfg.model, bf16_weights=True))
    model.init_weights()   # the runner's init pass comes after the cast: heads re-drawn, rounded again
    assert {p.dtype for p in [*model.backbone.parameters(), *model.neck.parameters()]} == {torch.bfloat16}
    heads = [*model.decode_head.parameters(), *model.auxiliary_head.parameters()]
    assert {p.dtype for p in heads} == {torch.float32}
    assert all(torch.equal(p, p.to(torch.bfloat16).float()) for p in heads)   # bf16 values, fp32 compute
    images, samples = _batch()
    assert {m.dtype for m in model.extract_feat(images)} == {torch.float32}  # what the heads are handed
    model.train()
    sum(v for k, v in model.loss(images, samples).items() if "loss" in k).backward()
    assert {p.grad.dtype for p in model.neck.parameters()} == {torch.bfloat16}
    assert {p.grad.dtype for p in heads} == {torch.float32}
    # The neck's init draws in fp32 and rounds, as the release initialised in fp32 before DeepSpeed's cast.
    torch.manual_seed(0)
    fp32 = ViTPyramidNeck(embed_dim=8)
    fp32.init_weights()
    torch.manual_seed(0)
    bf16 = ViTPyramidNeck(embed_dim=8).to(torch.bfloat16)
    bf16.init_weights()
    assert all(torch.equal(a.to(torch.bfloat16), b) for a, b in zip(fp32.parameters(), bf16.parameters()))


def test_backbone_returns_chosen_blocks_and_prunes_the_rest(tiny_encoder: Path) -> None:
    backbone = MODELS.build(dict(type="ProbeEncoder", source=str(tiny_encoder), out_indices=[-3]))
    assert backbone.out_indices == [1] and backbone.encoder.num_layers == 2
    images = torch.randn(2, 3, 56, 70)
    maps = backbone(images)
    assert [tuple(m.shape) for m in maps] == [(2, 48, 4, 5)] and maps[0].dtype == torch.float32
    # Same values as the full encoder's block-1 output: pruning changed nothing before that block.
    from probes import load_encoder

    with torch.no_grad():
        reference = load_encoder(str(tiny_encoder)).forward_intermediates(images, [1], intermediates_only=True)
    torch.testing.assert_close(maps[0], reference[0])


def test_pyramid_neck_strides() -> None:
    neck = ViTPyramidNeck(embed_dim=8)
    maps = [torch.randn(1, 8, 6, 4) for _ in range(4)]
    shapes = [tuple(o.shape) for o in neck(maps)]
    assert shapes == [(1, 8, 24, 16), (1, 8, 12, 8), (1, 8, 6, 4), (1, 8, 3, 2)]
    kinds = [type(m).__name__ for m in neck.up4]
    assert kinds == ["ConvTranspose2d", "ChannelLayerNorm", "GELU", "ConvTranspose2d"]
    assert torch.equal(neck(maps)[2], maps[2])


def test_pyramid_neck_matches_the_released_norm_and_init() -> None:
    torch.manual_seed(0)
    neck = ViTPyramidNeck(embed_dim=64)
    norm = neck.up4[1]
    assert norm.eps == 1e-6   # released: LayerNorm(embed_dim) with its default eps 1e-6, channels first
    x = torch.randn(2, 64, 3, 5) * 7 + 3
    expected = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + 1e-6)
    torch.testing.assert_close(norm(x), expected, atol=1e-5, rtol=1e-5)
    assert norm(x.to(torch.bfloat16)).dtype == torch.bfloat16   # computed in fp32, returned in bf16
    for conv in (neck.up4[0], neck.up4[3], neck.up2):
        fan_out = 2 * 2 * 64
        assert abs(conv.weight.std().item() - (2.0 / fan_out) ** 0.5) < 0.05 * (2.0 / fan_out) ** 0.5
        assert abs(conv.weight.mean().item()) < 0.01 and torch.count_nonzero(conv.bias) == 0


def test_linear_head_is_batchnorm_plus_1x1_conv(tiny_encoder: Path) -> None:
    model, _ = _tiny_model("linear", tiny_encoder)
    model.init_weights()   # what mmengine's Runner does before training
    head = model.decode_head
    assert isinstance(head.bn, GlobalBatchNorm) and head.bn.num_features == 48 and head.bn.eps == 1e-5
    assert abs(head.conv_seg.weight.std().item() - 0.01) < 0.002   # normal(0, 0.01), as released
    assert head.conv_seg.kernel_size == (1, 1) and head.conv_seg.out_channels == 150
    assert count_trainable(model) == 2 * 48 + 48 * 150 + 150
    model.eval()
    images, samples = _batch(1)
    out = model.predict(images, samples)[0].seg_logits.data
    assert out.shape == (150, 56, 56)   # logits upsampled to the image


def test_layer_decay_groups_on_tiny_model(tiny_encoder: Path) -> None:
    model, cfg = _tiny_model("full", tiny_encoder)
    optim_cfg = cfg.optim_wrapper.copy()
    assert optim_cfg.paramwise_cfg.num_layers == 4 and optim_cfg.paramwise_cfg.layer_decay_rate == 0.95
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type=optim_cfg.pop("constructor"), optim_wrapper_cfg=optim_cfg, paramwise_cfg=optim_cfg.pop("paramwise_cfg")))
    groups = constructor(model).optimizer.param_groups
    by_name = {n: g for g in groups for n in g["param_names"]}
    assert len(by_name) == sum(1 for p in model.parameters() if p.requires_grad)   # every trainable param, once
    expect = {  # name: (layer id, weight decay); released runs decay the class and position embeddings
        "backbone.encoder.embeddings.class_embedding": (0, 0.05),
        "backbone.encoder.embeddings.position_embedding": (0, 0.05),
        "backbone.encoder.embeddings.patch_embedding.weight": (0, 0.05),
        "backbone.encoder.embeddings.patch_embedding.bias": (0, 0.0),
        "backbone.encoder.encoder.layers.0.attn.qkv.weight": (1, 0.05),
        "backbone.encoder.encoder.layers.3.mlp.fc2.weight": (4, 0.05),
        "backbone.encoder.encoder.layers.3.norm1.weight": (4, 0.0),
        "backbone.encoder.encoder.layers.2.ls1": (3, 0.0),
        "neck.up2.weight": (5, 0.05),
        "decode_head.conv_seg.bias": (5, 0.0),
    }
    for name, (lid, wd) in expect.items():
        group = by_name[name]
        assert group["layer_id"] == lid == layer_id(name, 4), name
        assert group["weight_decay"] == wd, name
        assert group["lr"] == pytest.approx(4e-5 * 0.95 ** (5 - lid)), name
    assert by_name["decode_head.conv_seg.weight"]["lr"] == pytest.approx(4e-5)
    # The intended exemption, behind its config key (the result row names it when used).
    optim_cfg = cfg.optim_wrapper.copy()
    paramwise = dict(optim_cfg.pop("paramwise_cfg"), exempt_embeddings_from_decay=True)
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type=optim_cfg.pop("constructor"), optim_wrapper_cfg=optim_cfg, paramwise_cfg=paramwise))
    groups = constructor(model).optimizer.param_groups
    exempt = {n: g["weight_decay"] for g in groups for n in g["param_names"]}
    assert exempt["backbone.encoder.embeddings.position_embedding"] == 0.0
    assert exempt["backbone.encoder.embeddings.patch_embedding.weight"] == 0.05


def test_frozen_parameters_are_not_in_the_optimizer(tiny_encoder: Path) -> None:
    model, cfg = _tiny_model("head", tiny_encoder)
    optim_cfg = cfg.optim_wrapper.copy()
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type=optim_cfg.pop("constructor"), optim_wrapper_cfg=optim_cfg, paramwise_cfg=optim_cfg.pop("paramwise_cfg")))
    groups = constructor(model).optimizer.param_groups
    names = [n for g in groups for n in g["param_names"]]
    assert names and not any(n.startswith("backbone.") for n in names)
    assert {g["lr"] for g in groups} == {4e-5}


def test_layer_ids_for_timm_names() -> None:
    assert layer_id("backbone.encoder.model.cls_token", 12) == 0
    assert layer_id("backbone.encoder.model.pos_embed", 12) == 0
    assert layer_id("backbone.encoder.model.blocks.11.attn.qkv.weight", 12) == 12
    assert layer_id("backbone.encoder.model.norm.weight", 12) == 13


@pytest.mark.parametrize("mode, low, high", [
    ("linear", 0.45e6, 0.55e6),   # BN + 1x1 conv: ~0.5M
    ("head", 0.47e9, 0.49e9),     # neck + UPerHead (1536) ~0.44B + auxiliary FCNHead (1536 channels) 44.5M
    ("full", 6.37e9, 6.40e9),     # + the encoder (5.9B, position table at the 36x36 grid of a 504 crop)
])
def test_trainable_parameters_on_the_real_6b_shape(mode: str, low: float, high: float) -> None:
    version = "InternViT-6B-224px"
    cfg = _model_cfg(mode, f"random:{version}", _info(3200, 48, version))
    released = Config.fromfile(str(CONFIGS / version / f"ade20k_{mode}.py"))
    cfg.model.backbone.update(num_layers=48, out_indices=released.model.backbone.out_indices)
    with torch.device("meta"):
        model = MODELS.build(cfg.model)
    count = count_trainable(model)
    assert low <= count <= high, f"{mode}: {count:,}"
    if mode == "linear":   # BN(3200) + 1x1 conv 3200 -> 150, exactly
        assert count == 2 * 3200 + 3200 * 150 + 150


def test_bf16_stored_frozen_encoder_still_returns_float32_maps(tiny_encoder: Path) -> None:
    # On GPU `probes segment` stores a frozen encoder in bf16; without autocast (CPU) inputs follow it.
    backbone = MODELS.build(dict(type="ProbeEncoder", source=str(tiny_encoder), out_indices=[0, 3],
                                 dtype="bfloat16"))
    assert next(backbone.encoder.parameters()).dtype == torch.bfloat16
    maps = backbone(torch.randn(1, 3, 56, 56))
    assert [m.dtype for m in maps] == [torch.float32] * 2 and all(torch.isfinite(m).all() for m in maps)


@pytest.mark.parametrize("mode", ["linear", "head"])
def test_windows_in_one_batch_give_mmsegs_sliding_window_logits(mode: str, tiny_encoder: Path) -> None:
    from mmseg.models.segmentors import EncoderDecoder

    from probes.segmentation.models.segmentor import ProbeEncoderDecoder, slide_windows

    model, _ = _tiny_model(mode, tiny_encoder)
    assert isinstance(model, ProbeEncoderDecoder)
    model.eval()
    model.test_cfg.crop_size, model.test_cfg.stride = (56, 56), (28, 28)
    images = torch.randn(1, 3, 56, 126)   # 4 windows across, overlapping
    assert len(slide_windows(56, 126, (56, 56), (28, 28))) == 4
    metas = lambda: [{"img_shape": (56, 126), "ori_shape": (56, 126), "pad_shape": (56, 126)}]  # noqa: E731
    calls = []
    hook = model.backbone.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        ours = model.slide_inference(images, metas())
        assert len(calls) == 1   # one backbone call for the image, whatever its window count
        theirs = EncoderDecoder.slide_inference(model, images, metas())
    hook.remove()
    assert len(calls) == 1 + 4   # mmseg's loop: one call per window
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_modules_are_registered_by_one_explicit_call_not_by_import():
    """Importing a model module registers nothing; `register_modules` registers every class a config may name."""
    import subprocess
    import sys

    script = (
        "from probes.segmentation.mm_compat import install_mmcv_ops_standin\n"
        "install_mmcv_ops_standin()\n"
        "from mmseg.registry import HOOKS, MODELS, OPTIM_WRAPPERS\n"
        "import probes.segmentation.models.neck, probes.segmentation.hooks, probes.segmentation.master_weights\n"
        "names = [(MODELS, 'ViTPyramidNeck'), (MODELS, 'ProbeEncoderDecoder'), (HOOKS, 'EvaluationHistoryHook'),\n"
        "         (OPTIM_WRAPPERS, 'ReleasedPrecisionOptimWrapper')]\n"
        "assert all(r.get(n) is None for r, n in names), 'registered at import'\n"
        "from probes.segmentation.registry import register_modules\n"
        "register_modules(); register_modules()\n"
        "assert all(r.get(n) is not None for r, n in names), 'not registered'\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
