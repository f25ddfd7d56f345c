# `probes segment --strategy deepspeed`: DeepSpeed through mmengine's FlexibleRunner, as the released head
# and full tuning runs (InternVL-MMDetSeg zero_configs/adam_zero1_bf16.json: ZeRO stage 1, bf16 weights with
# fp32 master copies, the config's AdamW). Needs `pip install deepspeed` (not part of the [seg] extra).
runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    bf16=dict(enabled=True),
    zero_optimization=dict(stage=1, reduce_bucket_size=int(5e8), overlap_comm=True),
    gradient_clipping=0.0,
)
optim_wrapper = dict(type='DeepSpeedOptimWrapper')
