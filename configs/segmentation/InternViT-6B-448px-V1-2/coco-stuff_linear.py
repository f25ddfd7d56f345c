# InternViT-6B-448px-V1-2 (3200 wide, first 45 blocks), COCO-Stuff-164K, linear probing.
# The authors released no config for this encoder/dataset: OUR CHOICE, the ADE20K recipe
# of protocols.md with the last block.
_base_ = ['../coco-stuff_linear.py']
model = dict(backbone=dict(num_layers=45, out_indices=[44]), decode_head=dict(in_channels=3200))
