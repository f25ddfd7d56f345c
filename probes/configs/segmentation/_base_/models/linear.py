# Linear probing (released linear_probing configs): frozen encoder, ONE block, then mmseg 0.x's FCNHead
# with no convs and `with_norm=True` = SyncBatchNorm(C) + 1x1 conv (dropout 0), bilinear upsampling.
# `embed_dim`-dependent keys left as None are filled by `probes segment` from the encoder it loads;
# `out_indices=None` means the protocol's default (block 44 for the 6B versions, else the last block).
_base_ = ['./encoder_decoder.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    decode_head=dict(
        type='LinearProbeHead', in_channels=None, in_index=0, num_classes=150, dropout_ratio=0.0,
        norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
