"""Hugging Face hub repos: files from the local cache first, downloaded only when the network is allowed.

The cache folder and offline mode are read from the environment at call time (huggingface_hub
reads them once, at import), so `HF_HUB_CACHE=... HF_HUB_OFFLINE=1` set by a caller or a test
takes effect. Files land in the standard hub cache layout, shared with every other HF tool.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import huggingface_hub
from huggingface_hub import constants
from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, OfflineModeIsEnabled,
                                    RepositoryNotFoundError, RevisionNotFoundError)

from probes.encoders.tensor_files import INDEX_FILES, SINGLE_FILES, encoder_shard_names
from probes.errors import CheckpointError, EncoderSourceError

_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_cache_dir() -> Path:
    """The hub cache folder: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    env = os.environ
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(name):
            return Path(os.path.expandvars(os.path.expanduser(env[name])))
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface")
    return Path(os.path.expandvars(os.path.expanduser(home))) / "hub"


def hub_offline() -> bool:
    """Whether downloads are forbidden (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE set true)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return value.upper() in _TRUE if value is not None else bool(constants.HF_HUB_OFFLINE)


class HubRepo:
    """One hub repo at one revision; `get` returns a cached file or downloads it when allowed."""

    def __init__(self, repo_id: str, revision: Optional[str] = None) -> None:
        self.repo_id = repo_id
        self.revision = revision
        self.cache = hub_cache_dir()
        self.offline = hub_offline()
        self._listing: Optional[set[str]] = None

    @property
    def label(self) -> str:
        """`ORG/NAME` or `ORG/NAME@REVISION`."""
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id

    def cached(self, filename: str) -> Optional[Path]:
        """The file in the local cache, or None."""
        found = huggingface_hub.try_to_load_from_cache(
            self.repo_id, filename, cache_dir=str(self.cache), revision=self.revision)
        return Path(found) if isinstance(found, str) else None

    def has(self, filename: str) -> bool:
        """Whether the repo holds the file (offline: whether the cache does)."""
        if self.cached(filename) is not None:
            return True
        return False if self.offline else filename in self._files()

    def get(self, filename: str) -> Path:
        """The local path of a repo file, downloading it into the cache if needed and allowed."""
        found = self.cached(filename)
        if found is not None:
            return found
        if self.offline:
            raise self.not_cached(filename)
        try:
            return Path(huggingface_hub.hf_hub_download(
                self.repo_id, filename, revision=self.revision, cache_dir=str(self.cache)))
        except Exception as exc:  # noqa: BLE001 - every hub failure becomes one line
            raise self._failed(exc, filename) from None

    def not_cached(self, what: str) -> EncoderSourceError:
        """The one-line error for a repo (or one of its files) missing from the cache while offline."""
        revision = f" --revision {self.revision}" if self.revision else ""
        return EncoderSourceError(
            f"{self.label} is not in the Hugging Face cache {self.cache} ({what} missing) and offline mode "
            f"(HF_HUB_OFFLINE) forbids downloading; fetch it with `hf download {self.repo_id}{revision}` "
            f"(or `huggingface-cli download {self.repo_id}{revision}`), or set HF_HUB_CACHE to the cache that holds it")

    def _files(self) -> set[str]:
        if self._listing is None:
            try:
                self._listing = set(huggingface_hub.list_repo_files(self.repo_id, revision=self.revision))
            except Exception as exc:  # noqa: BLE001
                raise self._failed(exc, "the file list") from None
        return self._listing

    def _failed(self, exc: Exception, what: str) -> EncoderSourceError:
        if isinstance(exc, OfflineModeIsEnabled):
            return self.not_cached(what)
        if isinstance(exc, GatedRepoError):
            return EncoderSourceError(
                f"hub repo {self.repo_id} is gated: accept its terms and log in with `hf auth login`")
        if isinstance(exc, RepositoryNotFoundError):
            return EncoderSourceError(
                f"there is no hub repo {self.repo_id} (or it is private: log in with `hf auth login`)")
        if isinstance(exc, RevisionNotFoundError):
            return EncoderSourceError(f"hub repo {self.repo_id} has no revision {self.revision!r}")
        if isinstance(exc, EntryNotFoundError):
            return EncoderSourceError(f"hub repo {self.label} has no file {what}")
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return EncoderSourceError(f"could not fetch {what} of {self.label} from the hub ({first}); "
                                  "set HF_HUB_OFFLINE=1 to use only the local cache")


def fetch_checkpoint(repo_id: str, revision: Optional[str] = None, with_weights: bool = True) -> Path:
    """The snapshot folder with config.json, preprocessor_config.json and the shards holding encoder tensors."""
    repo = HubRepo(repo_id, revision)
    config = repo.get("config.json")
    if repo.has("preprocessor_config.json"):
        repo.get("preprocessor_config.json")
    if not with_weights:
        return config.parent
    for index in INDEX_FILES:
        if repo.has(index):
            index_path = repo.get(index)
            for shard in encoder_shard_names(index_path):  # exactly the shards the index lists for the encoder
                repo.get(shard)
            return index_path.parent
    for single in SINGLE_FILES:
        if repo.has(single):
            return repo.get(single).parent
    if repo.offline:
        raise repo.not_cached("its weights")
    raise CheckpointError(
        f"hub repo {repo.label} holds no weights (looked for {', '.join(INDEX_FILES + SINGLE_FILES)})")


def fetch_file(repo_id: str, candidates: list[str], revision: Optional[str] = None) -> Path:
    """The first of `candidates` the repo holds (a timm weight file), from the cache or downloaded."""
    repo = HubRepo(repo_id, revision)
    for name in candidates:
        if repo.has(name):
            return repo.get(name)
    if repo.offline:
        raise repo.not_cached(" or ".join(candidates))
    raise CheckpointError(f"hub repo {repo.label} holds none of {', '.join(candidates)}")
