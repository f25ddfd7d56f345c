# InternViT-6B-448px-V1-0 (3200 wide), ADE20K, linear probing.
# The authors released no config for this encoder/dataset: OUR CHOICE, the ADE20K recipe
# of protocols.md with the last block.
_base_ = ['../ade20k_linear.py']
model = dict(backbone=dict(num_layers=48, out_indices=[47]), decode_head=dict(in_channels=3200))
