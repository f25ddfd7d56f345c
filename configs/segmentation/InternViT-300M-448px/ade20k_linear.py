# InternViT-300M-448px (1024 wide), ADE20K, linear probing.
# The authors released no config for this encoder/dataset: OUR CHOICE, the ADE20K recipe
# of protocols.md with the last block.
_base_ = ['../ade20k_linear.py']
model = dict(backbone=dict(num_layers=24, out_indices=[23]), decode_head=dict(in_channels=1024))
