# InternViT-6B-448px-V2_5 (3200 wide), ADE20K, head tuning.
# depth, out_indices and paramwise_cfg.num_layers as released (docs/recipes.md).
_base_ = ['../ade20k_head.py']
recipe_source = 'OpenGVLab/InternVL-MMDetSeg mmsegmentation/configs/intern_vit_6b_448px_v2_5/head_tuning/upernet_intern_vit_6b_448px_v2_5_504_80k_ade20k_bs16_lr4e-5_frozen.py'
model = dict(backbone=dict(num_layers=45, out_indices=[11, 22, 33, 44]), neck=dict(embed_dim=3200),
             decode_head=dict(in_channels=[3200] * 4), auxiliary_head=dict(in_channels=3200))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=45))
