# Full tuning: the head-tuning model with a trainable encoder, stochastic depth 0.4 (protocols.md).
_base_ = ['./upernet.py']
model = dict(backbone=dict(trainable=True, drop_path_rate=0.4, grad_checkpointing=False))
