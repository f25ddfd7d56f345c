# InternViT-6B-448px-V2_5 (3200 wide, first 45 blocks), ADE20K, head tuning.
# The authors released no config for this encoder/dataset: OUR CHOICE, the ADE20K recipe
# of protocols.md with four evenly spaced blocks ending at the last.
_base_ = ['../ade20k_head.py']
model = dict(backbone=dict(num_layers=45, out_indices=[10, 21, 33, 44]), neck=dict(embed_dim=3200),
             decode_head=dict(in_channels=[3200] * 4), auxiliary_head=dict(in_channels=3200))
