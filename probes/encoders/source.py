"""What an encoder source string means, decided in one place (every loader and describer asks here)."""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from probes.encoders.versions import HUB_ORG, VERSIONS
from probes.errors import EncoderSourceError

# The seed of every seeded-random-weights encoder (`random:VERSION`, a timm model without weights): the same
# weights on every run, so --resume continues against the same encoder and the fingerprint names them.
RANDOM_SEED = 0

RANDOM_PREFIX = "random:"
TIMM_PREFIX = "timm:"
KINDS = ("path", "version", "timm", "hub", "random")
# ORG/NAME[@REVISION], as the Hugging Face hub spells repo ids.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*(@[^\s@]+)?$")
# Endings of checkpoint files: a source ending so names a file, never a hub repo.
FILE_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".json")

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class EncoderSource:
    """One parsed encoder source; `kind` says which of the other fields are set.

    - path: a local folder (HF, InternVL chat, transformers-saved) or file; `path`, maybe `version`.
    - version: a published version's weights at a local `path` (`VERSION=PATH`, or VERSION + weights=);
      `path` is None only when parsed for describing (`weights_required=False`).
    - timm: `timm_name`, maybe `timm_tag` (pretrained weights of that tag), `weights`, `revision`.
    - hub: a Hugging Face repo `repo_id` at `revision`; `version` when it is a published version's repo.
    - random: a published `version`'s architecture with seeded random weights (shape-only uses).
    """

    kind: str
    text: str
    path: Optional[Path] = None
    version: Optional[str] = None
    timm_name: Optional[str] = None
    timm_tag: Optional[str] = None
    repo_id: Optional[str] = None
    revision: Optional[str] = None
    weights: Optional[Path] = None

    @property
    def timm_model(self) -> Optional[str]:
        """`<name>.<tag>` or `<name>`, as timm.create_model takes it."""
        if self.timm_name is None:
            return None
        return f"{self.timm_name}.{self.timm_tag}" if self.timm_tag else self.timm_name

    @property
    def names_checkpoint(self) -> bool:
        """Whether the source names a checkpoint to find: a local folder or file, or a hub repo."""
        return self.kind == "hub" or (self.kind in ("path", "version") and self.path is not None)

    def __str__(self) -> str:
        return self.text


# How a source spells a published version's name, read here with the rest of it: a source is parsed in one pass.
def _normalise(name: str) -> str:
    return name.lower().replace(".", "-").replace("_", "-")


def find_version(name: str) -> str | None:
    """The canonical version name for `name` (case, '.', '_' and '-' ignored), or None."""
    wanted = _normalise(name)
    return next((known for known in VERSIONS if _normalise(known) == wanted), None)


def resolve_version(name: str) -> str:
    """The canonical version name; an unknown name is an error that suggests the closest ones."""
    found = find_version(name)
    if found is None:
        close = difflib.get_close_matches(name, list(VERSIONS), n=2, cutoff=0.5)
        hint = f"; did you mean {' or '.join(close)}?" if close else f"; known: {', '.join(VERSIONS)}"
        raise EncoderSourceError(f"unknown InternViT version {name!r}{hint}")
    return found


def hub_id(version: str) -> str:
    """The Hugging Face repo id of a published version."""
    return f"{HUB_ORG}/{version}"


def version_of_repo(repo_id: str) -> Optional[str]:
    """The published version a hub repo id holds (OpenGVLab/<version>), or None for any other repo."""
    org, _, name = repo_id.partition("/")
    if org.lower() != HUB_ORG.lower():
        return None
    version = find_version(name)
    return version if version is not None and _normalise(name) == _normalise(version) else None


def looks_like_hub_id(text: str) -> bool:
    """Whether `text` is spelled like a Hugging Face repo id, ORG/NAME (optionally @REVISION)."""
    return bool(_HUB_ID.match(text))


def looks_like_path(text: str) -> bool:
    """Whether `text` can only be a local path: it exists in part, or is spelled as no hub id could be.

    A path starts with ./ ../ / or ~, has more than one slash before any @revision, ends in a checkpoint
    file's suffix, or its first component exists here (`ckpt/typo` when `ckpt/` exists). Deciding this
    without the network matters: a mistyped path would otherwise be tried on the hub, with retries.
    """
    if text in (".", "..", "~") or text.startswith(("./", "../", "/", "~", ".\\", "..\\")):
        return True
    name = text.partition("@")[0]
    if name.count("/") > 1 or name.lower().endswith(FILE_SUFFIXES):
        return True
    first = name.split("/", 1)[0]
    return "/" in name and bool(first) and Path(first).exists()


def _refuse(value: object, what: str, text: str, why: str) -> None:
    if value is not None:
        raise EncoderSourceError(f"{what}={value} was given with the encoder source {text!r}, which {why}")


def _version_arg(version: Optional[str], text: str, carried: Optional[str]) -> Optional[str]:
    """A `version=` argument, checked against the version the source itself names."""
    if version is None:
        return carried
    wanted = resolve_version(version)
    if carried is not None and wanted != carried:
        raise EncoderSourceError(f"version={version} contradicts the encoder source {text!r}, which is {carried}")
    return wanted


def parse_source(text: Union[PathLike, EncoderSource], version: Optional[str] = None,
                 weights: Optional[PathLike] = None, revision: Optional[str] = None,
                 weights_required: bool = True) -> EncoderSource:
    """Decide what an encoder source names; an existing local path always wins over any other reading.

    A hub id is read only when nothing local matches and the text is not spelled as a path
    (`looks_like_path`): a mistyped path then fails at once as a missing path, with no network call.

    With `weights_required=False` (describing only), a bare version name is accepted without weights
    and gives a `version` source whose `path` is None.
    """
    if isinstance(text, EncoderSource):
        for name, value in (("version", version), ("weights", weights), ("revision", revision)):
            _refuse(value, name, text.text, "is already parsed")
        return text
    text = os.fspath(text)
    if not text.strip():
        raise EncoderSourceError("the encoder source is empty; give a folder, VERSION=PATH, ORG/NAME or timm:<name>")
    if text.startswith(RANDOM_PREFIX):
        _refuse(weights, "weights", text, "has seeded random weights")
        _refuse(revision, "revision", text, "has seeded random weights")
        return EncoderSource("random", text, version=resolve_version(text[len(RANDOM_PREFIX):]))
    if text.startswith(TIMM_PREFIX):
        name, _, tag = text[len(TIMM_PREFIX):].partition(".")
        if not name:
            raise EncoderSourceError(f"{text!r} names no timm model; write timm:<name> or timm:<name>.<tag>")
        # A `version=` (e.g. from a published config) does not apply to a timm model: ignored, as a path's would be.
        return EncoderSource("timm", text, timm_name=name, timm_tag=tag or None,
                             weights=Path(weights) if weights is not None else None, revision=revision)
    path = Path(text).expanduser()
    if path.exists():
        _refuse(weights, "weights", text, "is a checkpoint path already; give one or the other")
        _refuse(revision, "revision", text, "is a local path (revision applies to hub ids)")
        return EncoderSource("path", text, path=path, version=_version_arg(version, text, None))
    named = find_version(text)
    if named is not None:
        if weights is None and not weights_required:
            return EncoderSource("version", text, version=_version_arg(version, text, named))
        if weights is None:
            raise EncoderSourceError(
                f"{text} names an architecture, not weights: give weights=PATH, '{named}=/path/to/{named}', "
                f"or the hub id {hub_id(named)}")
        _refuse(revision, "revision", text, "names local weights (revision applies to hub ids)")
        return EncoderSource("version", text, path=Path(weights), version=_version_arg(version, text, named))
    if "=" in text:
        name, _, where = text.partition("=")
        carried = resolve_version(name)
        _refuse(weights, "weights", text, "names its weights already")
        _refuse(revision, "revision", text, "names local weights (revision applies to hub ids)")
        return EncoderSource("version", text, path=Path(where), version=_version_arg(version, text, carried))
    if _HUB_ID.match(text) and not looks_like_path(text):
        repo_id, _, pinned = text.partition("@")
        if pinned and revision is not None and revision != pinned:
            raise EncoderSourceError(f"revision={revision} contradicts the revision in the encoder source {text!r}")
        _refuse(weights, "weights", text, "is a hub id (its weights come from the hub cache)")
        return EncoderSource("hub", text, repo_id=repo_id, revision=revision or pinned or None,
                             version=_version_arg(version, text, version_of_repo(repo_id)))
    _refuse(weights, "weights", text, "is a checkpoint path already; give one or the other")
    _refuse(revision, "revision", text, "is a local path (revision applies to hub ids)")
    return EncoderSource("path", text, path=path, version=_version_arg(version, text, None))
