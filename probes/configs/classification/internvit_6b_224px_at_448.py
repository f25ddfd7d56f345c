# InternViT-6B-224px probed at 448px, as in the InternVL 2.5 report (position embedding resized).
_base_ = ['./_base_/probe_recipe.py']

encoder = dict(version='InternViT-6B-224px')
image_size = 448
