# COCO-Stuff-164K, full tuning (trainable encoder, drop path 0.4, layer-wise lr decay 0.95): the released InternViT-6B recipe, for any encoder.
# Width, depth, blocks used (out_indices), patch-size-dependent sizes and mean/std are filled from the
# encoder by `probes segment`. The InternViT-300M versions and timm baselines use this recipe unchanged:
# OUR CHOICE (no segmentation recipe was released for them); the 6B versions have their own files.
_base_ = ['./_base_/models/upernet_full.py', './_base_/datasets/coco-stuff.py',
          './_base_/schedules/full_80k.py', './_base_/default_runtime.py']
model = dict(decode_head=dict(num_classes=171), auxiliary_head=dict(num_classes=171))
