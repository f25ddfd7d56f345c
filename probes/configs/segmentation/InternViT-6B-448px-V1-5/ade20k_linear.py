# InternViT-6B-448px-V1-5 (3200 wide), ADE20K, linear probing.
# depth, out_indices and paramwise_cfg.num_layers as released (docs/recipes.md).
_base_ = ['../ade20k_linear.py']
recipe_source = 'OpenGVLab/InternVL-MMDetSeg mmsegmentation/configs/intern_vit_6b_448px_v1_5/linear_probing/linear_intern_vit_6b_448px_v1_5_504_80k_ade20k_bs16_lr4e-5_frozen.py'
model = dict(backbone=dict(num_layers=45, out_indices=[44]), decode_head=dict(in_channels=3200))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=45))
