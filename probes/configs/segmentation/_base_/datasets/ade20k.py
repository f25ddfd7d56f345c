# ADE20K (ADEChallengeData2016/): 150 classes, label 0 ("other") -> 255 via the dataset's reduce_zero_label
# (mmseg 1.x reads it from the dataset; LoadAnnotations' own argument is deprecated there).
# Released pipeline (InternVL-MMDetSeg configs/_base_/datasets/ade20k_504x504.py): random rescale of
# (2016, 504) x 0.5-2.0, crop 504 (cat_max_ratio 0.75),
# flip, photometric distortion; test: short side exactly 504, both sides rounded up to a multiple of 14.
# `size_divisor` 14 and the 504s are the patch-14 values: `probes segment` sets them from the encoder.
# CheckLabelRange's `num_classes` is the dataset's class count: `probes segment` sets it with the heads'.
# `train_dataloader.batch_size` is the TOTAL batch: `probes segment` divides it by the world size.
dataset_type = 'ADE20KDataset'
data_root = 'data/ADEChallengeData2016'
crop_size = (504, 504)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='CheckLabelRange', num_classes=None),
    dict(type='RandomResize', scale=(2016, 504), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    # Released test resize (SETR_Resize, setr_multi_scale): short side exactly 504, NO cap on the long side.
    dict(type='ResizeShortestEdge', scale=504, max_size=1 << 30),
    # Every side a multiple of the patch size (rounded up, bilinear; image only: labels stay original).
    dict(type='ResizeToMultiple', size_divisor=14),
    dict(type='LoadAnnotations'),
    dict(type='CheckLabelRange', num_classes=None),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=4, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, reduce_zero_label=True,
                 data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, reduce_zero_label=True,
                 data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
# mIoU over the whole split, ignore index 255 (mmseg's IoUMetric).
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
