"""The opt-in accelerator decoding path runs its device-agnostic logic on the CPU, and says it is off-protocol."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from probes.classification.pipeline.device_batches import DeviceBatches
from probes.classification.pipeline.gpu_decode import (
    GPU_DECODE_NOTE, EncodedFiles, TensorDecodeCrops, collate_encoded, decode_protocol_note)
from probes.errors import ConfigError, DatasetError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CPU = torch.device("cpu")


def _files(folder: Path) -> list:
    """A JPEG, a grayscale JPEG, a PNG named .JPEG and a 16-bit PNG: every kind a train split holds."""
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    paths = [folder / "rgb.JPEG", folder / "gray.JPEG", folder / "png.JPEG", folder / "deep.png"]
    noise.save(paths[0], format="JPEG")
    noise.convert("L").save(paths[1], format="JPEG")
    noise.save(paths[2], format="PNG")
    Image.fromarray(np.full((30, 40), 0x8080, dtype=np.uint16)).save(paths[3])
    return paths


def _host_batch(files: list) -> dict:
    dataset = EncodedFiles(files, list(range(len(files))))
    return collate_encoded([dataset[i] for i in range(len(files))])


def test_tensor_decoding_gives_a_normalised_batch_on_cpu(tmp_path):
    files = _files(tmp_path)
    decode = TensorDecodeCrops(CPU, 16)
    batches = list(DeviceBatches([_host_batch(files)], CPU, MEAN, STD, decode=decode))
    assert len(batches) == 1
    images = batches[0]["images"]
    assert images.shape == (4, 3, 16, 16) and images.dtype == torch.float32
    assert batches[0]["indices"].tolist() == [0, 1, 2, 3]
    grey = images[3] * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
    assert torch.allclose(grey, torch.full_like(grey, 0x80 / 255), atol=1e-5)  # 16-bit grey, not white


def test_undecodable_bytes_become_an_error_record_naming_the_file(tmp_path):
    files = _files(tmp_path)[:2]
    (tmp_path / "bad.JPEG").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    files.append(tmp_path / "bad.JPEG")
    decoded = TensorDecodeCrops(CPU, 16)(_host_batch(files))
    assert decoded["indices"].tolist() == [0, 1] and decoded["images"].dtype == torch.uint8
    with pytest.raises(DatasetError, match="bad.JPEG"):
        list(DeviceBatches([_host_batch(files)], CPU, MEAN, STD, decode=TensorDecodeCrops(CPU, 16)))


def test_gpu_decoding_carries_a_protocol_note():
    assert decode_protocol_note("cpu", CPU) is None
    assert decode_protocol_note("gpu", torch.device("cuda")) == GPU_DECODE_NOTE
    assert "Not the published protocol" in GPU_DECODE_NOTE


def test_gpu_decoding_without_cuda_is_a_config_error():
    with pytest.raises(ConfigError, match="data.decode"):
        decode_protocol_note("gpu", CPU)


def test_unknown_decode_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="'nvjpeg'"):
        decode_protocol_note("nvjpeg", CPU)


def test_jpeg_crops_keep_the_image_colours(tmp_path):
    Image.new("RGB", (40, 30), (200, 30, 60)).save(tmp_path / "flat.JPEG", quality=95)
    decoded = TensorDecodeCrops(CPU, 16)(_host_batch([tmp_path / "flat.JPEG"]))
    colour = torch.tensor([200, 30, 60]).view(3, 1, 1)
    assert (decoded["images"][0].int() - colour).abs().max() <= 3  # JPEG rounding only
