# Head tuning: weight decay 0.05, no layer decay (released head_tuning configs; the encoder is frozen).
_base_ = ['./schedule_80k.py']
optim_wrapper = dict(optimizer=dict(weight_decay=0.05))
