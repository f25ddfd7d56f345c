# InternViT-6B-448px-V1-0 at 448px; the published probe reads block 45 of 48, so the last 3 are dropped.
_base_ = ['./_base_/probe_recipe.py']

encoder = dict(version='InternViT-6B-448px-V1-0', num_layers=45)
image_size = 448
