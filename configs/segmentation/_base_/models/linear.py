# Linear probing (protocols.md): frozen encoder, ONE block, BatchNorm2d(C) + 1x1 conv, bilinear upsampling.
# `embed_dim`-dependent keys left as None are filled by `probes segment` from the encoder it loads;
# `out_indices=None` means the protocol's default (the last block in use).
_base_ = ['./encoder_decoder.py']
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    decode_head=dict(
        type='LinearProbeHead', in_channels=None, in_index=0, num_classes=150, dropout_ratio=0.0,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
