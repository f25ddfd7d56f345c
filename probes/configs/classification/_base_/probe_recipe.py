# The published ImageNet probe recipe (InternVL 1.0 / 2.5 reports and the authors' released config),
# plus the suite's own additions (one-pass lr sweep, held-out head selection, feature cache).
# Every key here is the full list of allowed keys: a key not defined here is a typo and an error.

encoder = dict(
    source=None,        # HF folder | InternVL chat folder | "VERSION=PATH" | "timm:<name>"
    version=None,       # e.g. "InternViT-6B-448px-V1-0"; needed with a bare weights file
    weights=None,
    revision=None,      # a hub id's branch, tag or commit
    num_layers=None,    # blocks to keep (V1-0 is probed on its first 45 of 48)
    dtype=None,         # storage dtype; None = bf16 on GPU, float32 on CPU
)

image_size = 224
interpolation = 'bicubic'           # train crop and eval resize; None = the encoder's own (data_config)
crop_pct = 1.0                      # eval: resize the short side to size / crop_pct, centre-crop size; None = encoder's

data = dict(
    root=None,
    # Where each set sits under data.root (absolute paths also work).
    paths={
        'train': 'train',
        'IN-1K': 'val',                 # val/<wnid>/ or the flat raw folder + val.txt / LOC_val_solution.csv
        'IN-ReaL': 'real.json',         # absent -> the ReaL labels bundled with timm
        'IN-V2': 'imagenetv2-matched-frequency-format-val',
        'IN-A': 'imagenet-a',
        'IN-R': 'imagenet-r',
        'IN-Sketch': 'sketch',
    },
    val_labels=None,                    # label file for a flat val folder (default: found beside it)
    test_sets=['IN-1K', 'IN-ReaL', 'IN-V2', 'IN-A', 'IN-R', 'IN-Sketch'],
    allow_subset=False,                 # score partial sets; every row then says subset=True
    on_corrupt='error',                 # 'error': stop naming the file | 'skip': leave it out, count it
    heldout_per_class=10,               # train images per class held out to pick the best head (our choice) ...
    heldout_max_fraction=0.2,           # ... but at most this share of a class (at least 1 image)
    train_per_class=None,               # train on at most N images per class (a subset protocol)
    workers=None,                       # loader processes; None = the cores available (per process on a node), at most 8
    decode='cpu',                       # 'gpu': batched nvJPEG decode + tensor crops for train (a different resampling)
    crop_on='auto',                     # where Pillow's resize runs: 'worker' | 'device' (same pixels) | 'auto': the faster, timed on CUDA
)

probe = dict(
    probes=['linear', 'attention_pooling'],
    # Base lr per 512 images. The published head (published_lr, raw weights, final epoch) is always
    # trained; the grid around it, for held-out selection, is our choice (rows say protocol=lr-grid).
    lrs=[0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0],
    published_lr=0.1,
    num_classes=1000,
    layers=None,                        # extra linear heads on other blocks: [12, 24, 36] or 'every:4' (1-based)
)

train = dict(
    epochs=10,
    batch_size=1024,                    # total over all processes
    eval_batch_size=None,               # None = batch_size
    lr_batch_ref=512,                   # lr = base_lr * batch_size / lr_batch_ref
    momentum=0.9,
    nesterov=True,
    weight_decay=0.0,
    warmup_epochs=1,
    clip_grad=5.0,
    ema_decay=0.998,
    mixup=0.8,
    cutmix=1.0,
    mixup_switch_prob=0.5,
    mixup_group=16,                     # images per Mixup/CutMix draw: the official per-GPU batch, on any hardware
    smoothing=0.1,
    scale=(0.08, 1.0),
    ratio=(3 / 4, 4 / 3),
    hflip=0.5,
    seed=0,
    seeds=1,                            # training replicas of every head (our addition): other init (and data order when cached), one backbone pass
    precision='fp16',                   # official: fp16 autocast over fp32 weights + loss scaling; bf16 | fp32
    eval_every_epoch=True,              # official: score every test set after every epoch (max over epochs kept)
)

cache = dict(
    dir=None,                           # set to train from a feature cache (protocol=cached)
    store=['pooled', 'tokens'],         # pooled (linear, float32) and/or tokens (attention pooling, bf16)
    epochs=10,
    batch_size=1024,
    train_per_class=None,               # cache only N train images per class
    knn=True,
    knn_k=20,
    logreg=True,
    logreg_max_iter=1000,
)

runtime = dict(
    device=None,                        # None = cuda if present else cpu
    out='runs/classification',
    resume=False,
    overwrite=False,                    # rerun a finished run, replacing its rows
    progress=True,
    log_interval_s=60,                  # without a terminal: one log line per epoch and every this many seconds
    protocol_label=None,                # e.g. 'demo': replaces the rows' protocol word (the notes keep the rest)
)
