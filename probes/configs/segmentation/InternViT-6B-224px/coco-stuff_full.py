# InternViT-6B-224px (3200 wide), COCO-Stuff-164K, full tuning.
# depth, out_indices and paramwise_cfg.num_layers as released (docs/recipes.md).
_base_ = ['../coco-stuff_full.py']
recipe_source = 'OpenGVLab/InternVL-MMDetSeg mmsegmentation/configs/intern_vit_6b/full_tuning/upernet_intern_vit_6b_504_80k_cocostuff164k_bs16_lr4e-5.py'
model = dict(backbone=dict(num_layers=48, out_indices=[11, 23, 35, 47], grad_checkpointing=True), neck=dict(embed_dim=3200),
             decode_head=dict(in_channels=[3200] * 4), auxiliary_head=dict(in_channels=3200))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=48))
# 6.3B trainable parameters: shard it (`probes segment ... --strategy fsdp|deepspeed`).
