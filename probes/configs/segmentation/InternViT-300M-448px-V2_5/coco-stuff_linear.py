# InternViT-300M-448px-V2_5 (1024 wide), COCO-Stuff-164K, linear probing: the 6B recipe (see ../coco-stuff_linear.py).
_base_ = ['../coco-stuff_linear.py']
model = dict(backbone=dict(num_layers=24, out_indices=[23]), decode_head=dict(in_channels=1024))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=24))
