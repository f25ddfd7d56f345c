# Head tuning (released head_tuning configs): four blocks -> 4-level pyramid neck -> mmseg's UPerHead
# (1536 channels, pool scales 1/2/3/6, dropout 0.1, SyncBN) + auxiliary FCNHead (1536 channels, one conv,
# dropout 0.1, SyncBN, loss weight 0.4) on pyramid level 1 (the x2 map).
# None-valued keys are filled by `probes segment` from the encoder (embed_dim, four blocks).
_base_ = ['./encoder_decoder.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    neck=dict(type='ViTPyramidNeck', embed_dim=None),
    decode_head=dict(
        type='UPerHead', in_channels=None, in_index=[0, 1, 2, 3], pool_scales=(1, 2, 3, 6),
        channels=1536, dropout_ratio=0.1, num_classes=150, norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead', in_channels=None, in_index=1, channels=1536, num_convs=1, concat_input=False,
        dropout_ratio=0.1, num_classes=150, norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)))
