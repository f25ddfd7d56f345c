# What every segmentation mode shares: preprocessing, the encoder backbone, sliding-window test.
# mean/std (0..255 units, RGB; images load BGR) are the encoder's own, filled by `probes segment` from
# its data_config (ImageNet statistics for every InternViT: 123.675/116.28/103.53, 58.395/57.12/57.375).
# Padding happens after normalisation (0 = the mean colour; labels padded with 255), as released.
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=None, std=None, bgr_to_rgb=True,
    pad_val=0, seg_pad_val=255, size=(504, 504))
model = dict(
    # mmseg's EncoderDecoder with the sliding windows of an image decoded in one batch: the same logits,
    # one backbone call per image (probes/segmentation/models/segmentor.py says why).
    type='ProbeEncoderDecoder',
    data_preprocessor=data_preprocessor,
    # input_size: the position table is resized once (bicubic) to this input's patch grid when the model
    # is built, as released; full tuning trains that resized table.
    backbone=dict(type='ProbeEncoder', source=None, revision=None, weights=None, out_indices=None, trainable=False,
                  input_size=504),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(504, 504), stride=(322, 322)))
