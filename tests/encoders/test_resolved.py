"""resolve_encoder: a source parsed, its checkpoint found, described and fingerprinted once."""
from __future__ import annotations

from probes.encoders.loader import load_encoder
from probes.encoders.resolved import resolve_encoder
from probes.testing.checkpoints import random_internvit, save_hf_folder, tiny_config


def _folder(tmp_path):
    cfg = tiny_config("300m", num_hidden_layers=2)
    return save_hf_folder(random_internvit(cfg).state_dict(), cfg, tmp_path / "mine")


def test_a_folder_is_parsed_and_looked_up_once(tmp_path, count_calls):
    import probes.encoders.checkpoint  # noqa: F401 - loaded before its functions are counted
    import probes.encoders.source  # noqa: F401

    folder = _folder(tmp_path)
    parsed = count_calls("probes.encoders.source", "parse_source")
    looked_up = count_calls("probes.encoders.checkpoint", "resolve_checkpoint")
    encoder = resolve_encoder(str(folder))
    assert (len(parsed), len(looked_up)) == (1, 1)
    assert encoder.info.name == "mine" and encoder.checkpoint is not None
    assert encoder.fingerprint == load_encoder(encoder.source, checkpoint=encoder.checkpoint).fingerprint


def test_a_folder_without_weights_is_described_from_its_configs(tmp_path, count_calls):
    folder = _folder(tmp_path)
    for shard in folder.glob("*.safetensors"):
        shard.unlink()
    looked_up = count_calls("probes.encoders.checkpoint", "resolve_checkpoint")
    encoder = resolve_encoder(str(folder))
    assert (encoder.checkpoint, encoder.fingerprint, encoder.info.num_layers) == (None, "", 2)
    assert [kwargs.get("with_weights", True) for _, kwargs in looked_up] == [True, False]
