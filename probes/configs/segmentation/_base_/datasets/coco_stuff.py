# COCO-Stuff-164K (coco_stuff164k/): 171 classes from *_labelTrainIds.png (run `probes prepare coco-stuff ROOT`).
# Released pipeline (InternVL-MMDetSeg configs/_base_/datasets/coco-stuff164k_504x504.py): the ADE20K
# pipeline unchanged, without zero reduction (255 is already the ignore value).
_base_ = ['./ade20k.py']
dataset_type = 'COCOStuffDataset'
data_root = 'data/coco_stuff164k'
crop_size = (504, 504)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='CheckLabelRange', num_classes=171),
    dict(type='RandomResize', scale=(2016, 504), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeShortestEdge', scale=504, max_size=1 << 30),
    dict(type='ResizeToMultiple', size_divisor=14),
    dict(type='LoadAnnotations'),
    dict(type='CheckLabelRange', num_classes=171),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root,
    data_prefix=dict(img_path='images/train2017', seg_map_path='annotations/train2017'),
    pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root,
    data_prefix=dict(img_path='images/val2017', seg_map_path='annotations/val2017'),
    pipeline=test_pipeline))
test_dataloader = val_dataloader
