# InternViT-300M-448px-V2_5 probed at its published 448px.
_base_ = ['./_base_/probe_recipe.py']

encoder = dict(version='InternViT-300M-448px-V2_5')
image_size = 448
