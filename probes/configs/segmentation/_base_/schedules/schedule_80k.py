# The released schedule (all 30 InternVL-MMDetSeg configs): 80k iterations, AdamW lr 4e-5, betas
# (0.9, 0.999); mmcv `poly` (power 1, min 0) over ALL 80k iterations from iteration 0, with a
# 1,500-iteration linear warm-up (ratio 1e-6) that MULTIPLIES the poly lr (mmcv's warm-up scales the
# regular lr). mmengine composes overlapping schedulers multiplicatively, and its Linear/Poly schedulers
# reach their end value at step `end - 1`, so LinearLR [0, 1501) and PolyLR [0, 80001) give exactly
# lr(i) = 4e-5 * (1 - i/80000) * (1 - (1 - i/1500)(1 - 1e-6)) for i < 1500, 4e-5 * (1 - i/80000) after
# (tests/segmentation/test_recipe.py checks every step against that closed form).
# `--iters N` shortens it keeping its shape (warm-up 1500*N/80000) and the row's protocol says so.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0, num_layers=None, exempt_embeddings_from_decay=False))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1501),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=0, end=80001),
]
# Released: evaluate every 1,000 iterations and keep the best checkpoint (`save_best='auto'`); the
# result row reports the final evaluation as mIoU and the best one as best_mIoU / best_iter.
train_cfg = dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=2,
                    save_best='mIoU', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
