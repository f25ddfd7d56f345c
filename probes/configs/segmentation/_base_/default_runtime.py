# Runtime shared by every segmentation config (mmengine Runner keys, plus the suite's own below).
default_scope = 'mmseg'
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
# Lean checkpoints in frozen modes + bit-identical resume (probes/segmentation/hooks.py).
custom_hooks = [dict(type='ProbeCheckpointHook'), dict(type='EvaluationHistoryHook'),
                dict(type='NonFiniteLossHook')]
# The released InternVL-MMDetSeg config this recipe transcribes (set by each 6B version's config).
recipe_source = None
# TF32 convolutions (cuDNN) on GPU, as torch 1.12 (the released runs) does by default; TF32 matmuls stay off,
# which is torch 1.12's default too. The heads are convolutions computing in fp32.
allow_tf32 = True
# How weights are held and updated (probes/segmentation/precision.py): None = 'released' on a GPU (head and full
# tuning: bf16 backbone and neck weights with fp32 masters updated as the released DeepSpeed ZeRO-1 run did,
# fp32 heads), 'fp32' on a CPU; or 'released' | 'autocast-fp32-weights' | 'fp32' on any device.
precision = None
