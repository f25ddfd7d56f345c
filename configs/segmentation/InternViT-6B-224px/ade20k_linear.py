# InternViT-6B-224px (3200 wide), ADE20K, linear probing.
# The released InternVL 1.0 configuration (protocols.md), expressed on our bases.
_base_ = ['../ade20k_linear.py']
model = dict(backbone=dict(num_layers=48, out_indices=[44]), decode_head=dict(in_channels=3200))
