# InternViT-6B-448px-V2_5 (3200 wide, first 45 blocks), ADE20K, linear probing.
# The authors released no config for this encoder/dataset: OUR CHOICE, the ADE20K recipe
# of protocols.md with the last block.
_base_ = ['../ade20k_linear.py']
model = dict(backbone=dict(num_layers=45, out_indices=[44]), decode_head=dict(in_channels=3200))
