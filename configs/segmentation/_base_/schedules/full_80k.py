# Full tuning: weight decay 0.05, layer-wise lr decay 0.95 (BEiT ids; num_layers filled from the encoder).
_base_ = ['./schedule_80k.py']
optim_wrapper = dict(optimizer=dict(weight_decay=0.05),
                     paramwise_cfg=dict(layer_decay_rate=0.95, num_layers=None))
