# Full tuning (released full_tuning configs): the head-tuning model with a trainable encoder, stochastic
# depth 0.4 (linear over depth), and the auxiliary head on pyramid level 2 (the x1 map; the released full
# tuning configs keep mmseg's upernet base `in_index=2`).
_base_ = ['./upernet.py']
model = dict(backbone=dict(trainable=True, drop_path_rate=0.4, grad_checkpointing=False),
             auxiliary_head=dict(in_index=2))
