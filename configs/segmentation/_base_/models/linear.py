# Linear probing (protocols.md): frozen encoder, ONE block, BatchNorm2d(C) + 1x1 conv, bilinear upsampling.
# `embed_dim`-dependent keys left as None are filled by `probes segment` from the encoder it loads;
# `out_indices=None` means the protocol's default (the last block in use).
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    # InternViT's ImageNet mean/std in 0..255 units; images are loaded BGR, the encoder wants RGB.
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
    pad_val=0, seg_pad_val=255, size=(504, 504))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='ProbeEncoder', source=None, out_indices=None, trainable=False),
    decode_head=dict(
        type='LinearProbeHead', in_channels=None, in_index=0, num_classes=150, dropout_ratio=0.0,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(504, 504), stride=(322, 322)))
