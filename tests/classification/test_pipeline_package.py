"""The image path is one package behind one builder, and it does not reach back into the live source."""
import ast
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import probes.classification.live as live
import probes.classification.pipeline as pipeline
from probes.classification.datasets import ImageSet
from probes.classification.distributed import DistInfo

PACKAGE = Path(pipeline.__file__).parent


def _imported_modules(path: Path) -> set:
    """Every module a file imports (`from a import b` counts as both `a` and `a.b`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_the_pipeline_package_never_imports_the_live_source():
    modules = sorted(PACKAGE.glob("*.py"))
    assert {p.stem for p in modules} >= {"__init__", "image_paths", "images", "device_crops", "pil_resample",
                                         "gpu_decode", "device_batches", "loaders"}
    for path in modules:
        assert "probes.classification.live" not in _imported_modules(path), path.name


def test_live_reaches_the_image_path_only_through_the_builder(tmp_path, tiny_cfg, monkeypatch):
    imports = {m for m in _imported_modules(Path(live.__file__)) if m.startswith("probes.classification.pipeline")}
    assert imports == {"probes.classification.pipeline", "probes.classification.pipeline.Preprocessing",
                       "probes.classification.pipeline.build_pipeline"}
    built = []

    def spy(*args, **kwargs):
        built.append(pipeline.build_pipeline(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(live, "build_pipeline", spy)
    files = []
    for i in range(4):
        files.append(tmp_path / f"img_{i}.JPEG")
        Image.fromarray(np.full((40, 40, 3), 50 * i, dtype=np.uint8)).save(files[-1])
    cfg = tiny_cfg(data__crop_on="worker", data__workers=0, train__batch_size=2, train__mixup=0.0,
                   train__cutmix=0.0)
    pre = pipeline.Preprocessing(32, "bicubic", 1.0, (0.5,) * 3, (0.5,) * 3)
    source = live.LiveSource(None, ImageSet("train", tmp_path, files, [0, 1, 2, 3]), pre, cfg.train, cfg.data, 4,
                             DistInfo(0, 1, torch.device("cpu")), None, None)
    assert len(built) == 1 and source.images is built[0]
    assert isinstance(source.images, pipeline.ImagePipeline)
    batches = list(source.images.train_batches(0))
    assert source.iters_per_epoch == 2
    assert [tuple(b["images"].shape) for b in batches] == [(2, 3, 32, 32)] * 2
