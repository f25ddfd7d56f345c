# Full tuning: weight decay 0.05, layer-wise lr decay 0.95 (released full_tuning configs). num_layers is
# the released `paramwise_cfg.num_layers` (the encoder's depth in use), filled from the encoder.
_base_ = ['./schedule_80k.py']
optim_wrapper = dict(optimizer=dict(weight_decay=0.05),
                     paramwise_cfg=dict(layer_decay_rate=0.95, num_layers=None))
