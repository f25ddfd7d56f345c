# Alternative to fsdp.py: DeepSpeed ZeRO-3 through mmengine's FlexibleRunner (needs `pip install deepspeed`,
# not part of the [seg] extra). bf16 weights/gradients with fp32 master copies sharded over ranks.
runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    bf16=dict(enabled=True),
    zero_optimization=dict(stage=3, overlap_comm=True, contiguous_gradients=True,
                           stage3_gather_16bit_weights_on_model_save=True),
    gradient_clipping=0.0,
    train_micro_batch_size_per_gpu=None,  # taken from train_dataloader.batch_size per process
)
# Use from a config that also sets the DeepSpeed optimizer wrapper (a key its other base defines too):
#   _base_ = ['./ade20k_full.py', '../_base_/strategies/deepspeed_zero3.py']
#   optim_wrapper = dict(type='DeepSpeedOptimWrapper')
