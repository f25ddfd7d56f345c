# COCO-Stuff-164K, linear probing (frozen encoder, one block, SyncBN + 1x1 conv): the released InternViT-6B recipe, for any encoder.
# Width, depth, blocks used (out_indices), patch-size-dependent sizes and mean/std are filled from the
# encoder by `probes segment`. The InternViT-300M versions and timm baselines use this recipe unchanged:
# OUR CHOICE (no segmentation recipe was released for them); the 6B versions have their own files.
_base_ = ['./_base_/models/linear.py', './_base_/datasets/coco-stuff.py',
          './_base_/schedules/linear_80k.py', './_base_/default_runtime.py']
model = dict(decode_head=dict(num_classes=171))
