# Head tuning and full tuning (protocols.md): four blocks -> 4-level pyramid -> mmseg's UPerHead
# (1536 channels, pool scales 1/2/3/6, dropout 0.1) + auxiliary FCNHead on the x1 level (weight 0.4).
# None-valued keys are filled by `probes segment` from the encoder (embed_dim, four evenly spaced
# blocks ending at the last).
_base_ = ['./encoder_decoder.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    neck=dict(type='ViTPyramidNeck', embed_dim=None),
    decode_head=dict(
        type='UPerHead', in_channels=None, in_index=[0, 1, 2, 3], pool_scales=(1, 2, 3, 6),
        channels=1536, dropout_ratio=0.1, num_classes=150, norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead', in_channels=None, in_index=2, channels=256, num_convs=1, concat_input=False,
        dropout_ratio=0.1, num_classes=150, norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)))
