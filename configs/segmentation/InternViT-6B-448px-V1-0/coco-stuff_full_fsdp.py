# InternViT-6B-448px-V1-0, COCO-Stuff-164K, full tuning sharded with FSDP over all ranks (mmengine FlexibleRunner).
_base_ = ['./coco-stuff_full.py', '../_base_/strategies/fsdp.py']
