# InternViT-6B-224px, ADE20K, full tuning sharded with FSDP over all ranks (mmengine FlexibleRunner).
_base_ = ['./ade20k_full.py', '../_base_/strategies/fsdp.py']
