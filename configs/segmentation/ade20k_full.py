# ADE20K, full tuning (trainable encoder, drop path 0.4, layer-wise lr decay 0.95), for any encoder.
# Width, depth and the blocks used (out_indices) are filled from the encoder by `probes segment`.
_base_ = ['./_base_/models/upernet_full.py', './_base_/datasets/ade20k.py',
          './_base_/schedules/full_80k.py', './_base_/default_runtime.py']
model = dict(decode_head=dict(num_classes=150), auxiliary_head=dict(num_classes=150))
