# InternViT-6B-224px at its published 224px (all 48 blocks).
_base_ = ['./_base_/probe_recipe.py']

encoder = dict(version='InternViT-6B-224px')
image_size = 224
