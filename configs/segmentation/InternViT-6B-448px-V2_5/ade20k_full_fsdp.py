# InternViT-6B-448px-V2_5, ADE20K, full tuning sharded with FSDP over all ranks (mmengine FlexibleRunner).
_base_ = ['./ade20k_full.py', '../_base_/strategies/fsdp.py']
