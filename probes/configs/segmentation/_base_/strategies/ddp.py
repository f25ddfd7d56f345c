# `probes segment --strategy ddp`: plain data parallelism through mmengine's FlexibleRunner (the runner the
# sharded strategies use), e.g. as the unsharded reference of an FSDP run.
runner_type = 'FlexibleRunner'
strategy = dict(type='DDPStrategy')
