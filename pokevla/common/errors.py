"""User-facing errors.

A `PokeVLAError` carries one line that says what is wrong and how to fix it. The CLI prints that
line (no traceback) and exits with status 2; library callers can catch it like any exception.
"""


class PokeVLAError(Exception):
    """Bad input or an unusable environment, explained in one line for the user."""


class ConfigError(PokeVLAError):
    """A configuration value or flag is invalid."""


class DatasetError(PokeVLAError):
    """A dataset on disk is missing, truncated or inconsistent."""


class CheckpointError(PokeVLAError):
    """A checkpoint is missing, corrupt or does not match the model."""


class SimulatorError(PokeVLAError):
    """The simulator cannot start, or a suite / task does not exist."""
