"""The few exception types a user can see.

Every error that a user can cause is a :class:`DidacticError`: the CLI prints its message as one
line and exits with its ``exit_code``, without a traceback. Anything else is a bug.
"""

from __future__ import annotations


class DidacticError(Exception):
    """Base of the errors didactic reports to the user as one line."""

    exit_code = 1


class ConfigError(DidacticError):
    """A config value is out of range, of the wrong type, or names something missing.

    Parameters
    ----------
    key
        Dotted config key, e.g. ``separator.shifts``.
    value
        The offending value as given.
    allowed
        What would have been accepted, in words.
    """

    exit_code = 2

    def __init__(self, key: str, value: object, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"config error: {key}={value!r}: {allowed}")


class AudioError(DidacticError):
    """An audio file cannot be used: missing, unreadable, empty, non-finite or too short."""

    def __init__(self, path: object, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"audio error: {path}: {reason}")


class StageError(DidacticError):
    """A pipeline stage failed on a song for a reason the user can act on."""

    def __init__(self, stage: str, message: str) -> None:
        self.stage = stage
        super().__init__(f"{stage} error: {message}")


class StorageError(StageError):
    """Reading or writing a file failed: disk full, read-only file system, a network disk that
    kept failing after retries."""


class StageTimeout(StageError):  # noqa: N818 - the name users see in the manifest
    """A stage ran past its configured timeout."""
