# ADE20K, head tuning (frozen encoder, 4-level pyramid, UPerHead + aux FCNHead), for any encoder.
# Width, depth and the blocks used (out_indices) are filled from the encoder by `probes segment`.
_base_ = ['./_base_/models/upernet.py', './_base_/datasets/ade20k.py',
          './_base_/schedules/head_80k.py', './_base_/default_runtime.py']
model = dict(decode_head=dict(num_classes=150), auxiliary_head=dict(num_classes=150))
