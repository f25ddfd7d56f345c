# InternViT-300M-448px (1024 wide), COCO-Stuff-164K, full tuning: the 6B recipe (see ../coco-stuff_full.py).
_base_ = ['../coco-stuff_full.py']
model = dict(backbone=dict(num_layers=24, out_indices=[5, 11, 17, 23]), neck=dict(embed_dim=1024),
             decode_head=dict(in_channels=[1024] * 4), auxiliary_head=dict(in_channels=1024))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=24))
