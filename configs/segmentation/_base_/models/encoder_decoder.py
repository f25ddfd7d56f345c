# What every segmentation mode shares: preprocessing, the encoder backbone, sliding-window test.
# InternViT's ImageNet mean/std in 0..255 units; images are loaded BGR, the encoder wants RGB.
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
    pad_val=0, seg_pad_val=255, size=(504, 504))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='ProbeEncoder', source=None, out_indices=None, trainable=False),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(504, 504), stride=(322, 322)))
