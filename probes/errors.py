"""Exceptions the library raises; the CLI turns them into one-line messages and exit code 2."""


class ProbeError(Exception):
    """Base class: a user-facing problem whose message is one sentence naming the culprit."""


class EncoderSourceError(ProbeError):
    """The encoder source (path, version name, timm name) cannot be resolved."""


class CheckpointError(ProbeError):
    """A checkpoint is missing, truncated, corrupt, or its keys do not match the architecture."""


class ConfigError(ProbeError):
    """A configuration file or option is invalid (typo, wrong type, missing field)."""


class DatasetError(ProbeError):
    """A dataset is missing, partial, or holds a file that cannot be read."""


class InputSizeError(ProbeError, ValueError):
    """An input tensor has a size the encoder cannot take (e.g. not a multiple of the patch size)."""


class TrainingDivergedError(ProbeError):
    """A loss or a feature became NaN or infinite during training; no result row is written."""
