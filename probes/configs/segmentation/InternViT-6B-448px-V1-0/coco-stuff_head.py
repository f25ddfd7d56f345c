# InternViT-6B-448px-V1-0 (3200 wide), COCO-Stuff-164K, head tuning.
# depth, out_indices and paramwise_cfg.num_layers as released (docs/recipes.md).
_base_ = ['../coco-stuff_head.py']
recipe_source = 'OpenGVLab/InternVL-MMDetSeg mmsegmentation/configs/intern_vit_6b_448px_v1_0/head_tuning/upernet_intern_vit_6b_448px_v1_0_504_80k_cocostuff164k_bs16_lr4e-5_frozen.py'
model = dict(backbone=dict(num_layers=45, out_indices=[11, 22, 33, 44]), neck=dict(embed_dim=3200),
             decode_head=dict(in_channels=[3200] * 4), auxiliary_head=dict(in_channels=3200))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=45))
