# `probes segment --strategy fsdp`: sharded training (mmengine FlexibleRunner + FSDP), for full tuning of the
# 6B encoders. Full tuning keeps fp32 weights,
# gradients and two AdamW moments for 6.3B parameters (~100 GB): more than one GPU holds, so parameters,
# gradients and optimizer state are sharded over all ranks. Launch with torchrun / srun and
# `--launcher pytorch|slurm` (see docs/segmentation.md). Checkpoints are gathered on rank 0 ("full"), so --resume and the
# result row work as in unsharded runs.
runner_type = 'FlexibleRunner'
strategy = dict(
    type='ProbeFSDPStrategy',   # mmengine's FSDPStrategy, resume fixed for torch 2.x (mm_compat.py)
    model_wrapper=dict(
        # One FSDP unit per encoder block (any depth); neck and heads stay in the root unit, because mmseg
        # calls the heads' `loss`/`predict` rather than their forward (mm_compat.encoder_block_policy).
        auto_wrap_policy=dict(type='probe_encoder_block_policy'),
        # Keep the original parameter names: the layer-decay constructor groups parameters by name.
        use_orig_params=True),
    state_dict_cfg='full',
)
# Pair with a config whose backbone has grad_checkpointing=True (all 6B full-tuning configs do): block
# recomputation is what makes the activations of 45-48 blocks fit.
