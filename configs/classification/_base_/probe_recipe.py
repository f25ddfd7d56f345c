# The published ImageNet probe recipe (InternVL 1.0 / 2.5 reports and the authors' released config),
# plus the suite's own additions (one-pass lr sweep, held-out head selection, feature cache).
# Every key here is the full list of allowed keys: a key not defined here is a typo and an error.

encoder = dict(
    source=None,        # HF folder | InternVL chat folder | "VERSION=PATH" | "timm:<name>"
    version=None,       # e.g. "InternViT-6B-448px-V1-0"; needed with a bare weights file
    weights=None,
    num_layers=None,    # blocks to keep (V1-0 is probed on its first 45 of 48)
    dtype=None,         # storage dtype; None = bf16 on GPU, float32 on CPU
)

image_size = 224
interpolation = 'bicubic'

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
    heldout_per_class=10,               # train images per class held out to pick the best head (our choice)
    train_per_class=None,               # train on at most N images per class (a subset protocol)
    workers=8,
)

probe = dict(
    probes=['linear', 'attention_pooling'],
    # Base lr per 512 images; the published value is 0.1. The grid is our choice.
    lrs=[0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0],
    num_classes=1000,
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
    smoothing=0.1,
    scale=(0.08, 1.0),
    ratio=(3 / 4, 4 / 3),
    hflip=0.5,
    seed=0,
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
    out='results/classification',
    resume=False,
    progress=True,
    protocol_label=None,                # e.g. 'demo': replaces the rows' protocol word (the notes keep the rest)
)
