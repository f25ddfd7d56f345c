# InternViT-6B-224px (3200 wide), COCO-Stuff-164K, linear probing.
# The authors released no config for this encoder/dataset: OUR CHOICE, the ADE20K recipe
# of protocols.md with the last block.
_base_ = ['../coco-stuff_linear.py']
model = dict(backbone=dict(num_layers=48, out_indices=[44]), decode_head=dict(in_channels=3200))
