# COCO-Stuff-164K (coco_stuff164k/): 171 classes from *_labelTrainIds.png (run `probes prepare coco-stuff ROOT`).
# Released pipeline (InternVL-MMDetSeg configs/_base_/datasets/coco-stuff164k_504x504.py): the ADE20K
# pipeline unchanged, without zero reduction (255 is already the ignore value). Only the dataset differs.
_base_ = ['./ade20k.py']
dataset_type = 'COCOStuffDataset'
data_root = 'data/coco_stuff164k'
train_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root, reduce_zero_label=False,
    data_prefix=dict(img_path='images/train2017', seg_map_path='annotations/train2017')))
val_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root, reduce_zero_label=False,
    data_prefix=dict(img_path='images/val2017', seg_map_path='annotations/val2017')))
test_dataloader = val_dataloader
