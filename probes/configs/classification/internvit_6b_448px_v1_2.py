# InternViT-6B-448px-V1-2 (45 blocks) at 448px.
_base_ = ['./_base_/probe_recipe.py']

encoder = dict(version='InternViT-6B-448px-V1-2')
image_size = 448
