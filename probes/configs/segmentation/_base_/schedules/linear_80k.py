# Linear probing: weight decay 0, no layer decay (released linear_probing configs).
_base_ = ['./schedule_80k.py']
optim_wrapper = dict(optimizer=dict(weight_decay=0.0))
