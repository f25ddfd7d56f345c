# ADE20K, linear probing (frozen encoder, one block, BN + 1x1 conv), for any encoder.
# Width, depth and the blocks used (out_indices) are filled from the encoder by `probes segment`.
_base_ = ['./_base_/models/linear.py', './_base_/datasets/ade20k.py',
          './_base_/schedules/linear_80k.py', './_base_/default_runtime.py']
model = dict(decode_head=dict(num_classes=150))
