# InternViT-6B-224px (3200 wide), ADE20K, full tuning.
# The released InternVL 1.0 configuration (protocols.md), expressed on our bases.
_base_ = ['../ade20k_full.py']
model = dict(backbone=dict(num_layers=48, out_indices=[11, 23, 35, 47], grad_checkpointing=True), neck=dict(embed_dim=3200),
             decode_head=dict(in_channels=[3200] * 4), auxiliary_head=dict(in_channels=3200))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=48))
# 6.3B trainable parameters: shard with ./ade20k_full_fsdp.py (FlexibleRunner + FSDP).
