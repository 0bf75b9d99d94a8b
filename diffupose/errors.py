"""Exceptions with messages meant for users (one line, naming the file and the problem)."""


class DiffuPoseError(Exception):
    """Base class for errors the CLI reports as one line instead of a traceback."""


class DataError(DiffuPoseError):
    """Bad or missing input data: names the file and what is wrong with it."""


class CheckpointError(DiffuPoseError):
    """A checkpoint that is missing, corrupt, truncated or incompatible with the config."""


class ConfigError(DiffuPoseError):
    """An unknown config key, a bad value, or an unknown sampler/aggregation/preset name."""
