# InternViT-6B-224px, COCO-Stuff-164K, full tuning sharded with FSDP over all ranks (mmengine FlexibleRunner).
_base_ = ['./coco-stuff_full.py', '../_base_/strategies/fsdp.py']
