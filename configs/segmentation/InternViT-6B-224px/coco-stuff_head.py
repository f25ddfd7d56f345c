# InternViT-6B-224px (3200 wide), COCO-Stuff-164K, head tuning.
# The authors released no config for this encoder/dataset: OUR CHOICE, the ADE20K recipe
# of protocols.md with four evenly spaced blocks ending at the last.
_base_ = ['../coco-stuff_head.py']
model = dict(backbone=dict(num_layers=48, out_indices=[11, 23, 35, 47]), neck=dict(embed_dim=3200),
             decode_head=dict(in_channels=[3200] * 4), auxiliary_head=dict(in_channels=3200))
