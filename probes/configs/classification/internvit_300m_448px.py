# InternViT-300M-448px probed at its published 448px.
_base_ = ['./_base_/probe_recipe.py']

encoder = dict(version='InternViT-300M-448px')
image_size = 448
