"""Workers decode any image file by content and hand uint8 batches over; corrupt files are named."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms as T

from probes.classification import datasets as ds
from probes.classification.pipeline import images as images_module
from probes.classification.pipeline.images import (
    ImageFiles, Mirrored, batch_images, build_eval_transform, build_train_transform, check_errors, collate, decode_rgb)
from probes.errors import ConfigError, DatasetError


def _image(path: Path, size=(20, 16), mode="RGB", fmt="JPEG", color=(200, 30, 60)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).convert(mode).save(path, format=fmt)
    return path


def _noise(path: Path, size=(30, 22), seed=0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG")
    return path


# ------------------------------------------------------------------ decoding by content

@pytest.mark.parametrize("mode,fmt", [("RGB", "PNG"), ("CMYK", "JPEG"), ("L", "JPEG"), ("P", "PNG"),
                                      ("RGBA", "PNG")])
def test_images_are_decoded_by_content_to_rgb(tmp_path, mode, fmt):
    path = _image(tmp_path / "x.JPEG", mode=mode, fmt=fmt)  # the extension says JPEG whatever the content
    img = decode_rgb(path)
    assert img.mode == "RGB" and img.size == (20, 16)
    crop = build_eval_transform(14)(img)
    assert crop.mode == "RGB" and crop.size == (14, 14)
    batch = collate([(crop, 0, 0, None)])["images"]
    assert batch.shape == (1, 3, 14, 14) and batch.dtype == torch.uint8


def test_train_quirks_all_load(data_root):
    train = ds.read_train(data_root / "train", allow_subset=True)
    by_quirk = {q: [p for p in train.files if p.name.endswith(f"_{q}.JPEG")] for q in ("png", "cmyk", "gray")}
    assert all(by_quirk.values()), {q: len(v) for q, v in by_quirk.items()}   # each quirk is in the set
    expected = {"png": ("PNG", None), "cmyk": ("JPEG", "CMYK"), "gray": ("JPEG", "L")}
    for quirk, paths in by_quirk.items():
        for path in paths:
            with Image.open(path) as raw:
                fmt, mode = raw.format, raw.mode
            assert fmt == expected[quirk][0] and expected[quirk][1] in (None, mode), (path, fmt, mode)
            rgb = np.asarray(decode_rgb(path))
            assert rgb.shape[2] == 3 and rgb.dtype == np.uint8
            if quirk == "gray":   # a grey file decodes to three equal channels
                assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    for path in train.files:
        assert decode_rgb(path).mode == "RGB", path


def test_16_bit_png_keeps_its_grey_level(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((6, 8), 0x8080, dtype=np.uint16)).save(path)  # 50% grey in 16 bits
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")  # the file really holds 16-bit samples
    assert np.asarray(decode_rgb(path)).tolist() == np.full((6, 8, 3), 0x80).tolist()


def test_16_bit_png_keeps_its_gradient(tmp_path):
    path = tmp_path / "ramp.png"
    Image.fromarray((np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)).save(path)
    grey = np.asarray(decode_rgb(path))[..., 0]
    assert grey.ravel().tolist() == list(range(256))


# ------------------------------------------------------------------ worker transforms

def test_train_transform_returns_crops_of_the_input_size_some_to_mirror(tmp_path):
    img = decode_rgb(_noise(tmp_path / "a.JPEG"))
    torch.manual_seed(0)
    outs = [build_train_transform(12, scale=(0.5, 1.0))(img) for _ in range(8)]
    assert any(isinstance(o, Mirrored) for o in outs) and not all(isinstance(o, Mirrored) for o in outs)
    for out in outs:
        crop = out.image if isinstance(out, Mirrored) else out
        assert crop.mode == "RGB" and crop.size == (12, 12)


@pytest.mark.parametrize("opencv", [True, False], ids=["opencv", "numpy"])
def test_mirrored_crops_are_torchvisions_flips_for_the_same_seed(tmp_path, monkeypatch, opencv):
    if not opencv:
        monkeypatch.setattr(images_module, "cv2_or_none", lambda: None)
    elif images_module.cv2_or_none() is None:
        pytest.skip("OpenCV is not installed (it comes with the seg extra)")
    files = [_noise(tmp_path / f"{i}.JPEG", size=(31 + i, 23), seed=i) for i in range(8)]
    reference = T.Compose([T.RandomResizedCrop(13, interpolation=T.InterpolationMode.BICUBIC),
                           T.RandomHorizontalFlip(), T.PILToTensor()])
    torch.manual_seed(5)
    want = torch.stack([reference(decode_rgb(f)) for f in files])
    torch.manual_seed(5)
    got = collate([(build_train_transform(13)(decode_rgb(f)), 0, i, None) for i, f in enumerate(files)])["images"]
    assert torch.equal(got, want)
    torch.manual_seed(5)
    assert sum(isinstance(build_train_transform(13)(decode_rgb(f)), Mirrored) for f in files) >= 2


def test_eval_transform_keeps_the_center_of_the_short_side(tmp_path):
    # A wide image whose left and right thirds are black: a center crop of the short side is all white.
    pixels = np.zeros((30, 90, 3), dtype=np.uint8)
    pixels[:, 30:60] = 255
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    out = np.asarray(build_eval_transform(10, crop_pct=1.0)(decode_rgb(tmp_path / "wide.png")))
    assert out.shape == (10, 10, 3) and out[:, 2:8].min() == 255


def test_unknown_interpolation_is_a_config_error():
    with pytest.raises(ConfigError, match="nearest"):
        build_train_transform(12, interpolation="nearest")


def test_batch_holds_each_crops_pixels_channel_by_channel(tmp_path):
    crops = [build_eval_transform(12)(decode_rgb(_noise(tmp_path / f"{i}.JPEG", seed=i))) for i in range(3)]
    batch = batch_images(crops)
    assert batch.shape == (3, 3, 12, 12) and batch.is_contiguous()
    tensors = [torch.from_numpy(np.asarray(c).copy()).permute(2, 0, 1) for c in crops]
    assert torch.equal(batch, torch.stack(tensors))
    assert torch.equal(batch_images(tensors), batch)   # uint8 CHW tensors are batched alike
    assert torch.equal(batch_images([Mirrored(c) for c in crops]), batch.flip(-1))


def test_crops_of_different_sizes_cannot_share_a_batch(tmp_path):
    img = decode_rgb(_noise(tmp_path / "a.JPEG"))
    with pytest.raises(ValueError, match=r"different shapes.*\(3, 12, 12\).*\(3, 14, 14\)"):
        batch_images([build_eval_transform(12)(img), build_eval_transform(14)(img)])


def test_two_workers_yield_uint8_batches(tmp_path):
    files = [_noise(tmp_path / f"{i}.JPEG", seed=i) for i in range(6)]
    dataset = ImageFiles(files, list(range(6)), build_eval_transform(16))
    loader = DataLoader(dataset, batch_size=3, num_workers=2, collate_fn=collate)
    batches = list(loader)
    assert [b["indices"].tolist() for b in batches] == [[0, 1, 2], [3, 4, 5]]
    for batch in batches:
        assert batch["images"].dtype == torch.uint8 and batch["images"].shape == (3, 3, 16, 16)
    # Written into shared memory by the workers, the pixels are those of this process's batch.
    assert torch.equal(batches[1]["images"], collate([dataset[i] for i in (3, 4, 5)])["images"])


# ------------------------------------------------------------------ corrupt files

def test_corrupt_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.JPEG"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = _image(tmp_path / "good.JPEG")
    dataset = ImageFiles([good, bad], [0, 1], build_eval_transform(14))
    batch = collate([dataset[0], dataset[1]])
    with pytest.raises(DatasetError, match="broken.JPEG"):
        check_errors(batch, "error")
    assert check_errors(batch, "skip") == 1
    assert batch["images"].shape[0] == 1 and batch["indices"].tolist() == [0]


def test_a_skipped_file_is_logged_once(tmp_path, caplog):
    bad = tmp_path / "broken.JPEG"
    bad.write_bytes(b"garbage")
    batch = collate([ImageFiles([bad], [0], build_eval_transform(14))[0]])
    logged: set = set()
    with caplog.at_level("WARNING"):
        assert [check_errors(batch, "skip", logged) for _ in range(3)] == [1, 1, 1]
    assert [r.getMessage().count("broken.JPEG") > 0 for r in caplog.records] == [True]


def test_truncated_image_is_corrupt(tmp_path):
    path = _image(tmp_path / "cut.JPEG", size=(64, 64))
    path.write_bytes(path.read_bytes()[:200])
    dataset = ImageFiles([path], [0], build_eval_transform(14))
    with pytest.raises(DatasetError, match="cut.JPEG"):
        check_errors(collate([dataset[0]]), "error")
