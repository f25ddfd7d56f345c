# InternViT-6B-224px (3200 wide), ADE20K, head tuning.
# The released InternVL 1.0 configuration (protocols.md), expressed on our bases.
_base_ = ['../ade20k_head.py']
model = dict(backbone=dict(num_layers=48, out_indices=[11, 23, 35, 47]), neck=dict(embed_dim=3200),
             decode_head=dict(in_channels=[3200] * 4), auxiliary_head=dict(in_channels=3200))
