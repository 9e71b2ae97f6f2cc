"""The exceptions lever raises for bad input and bad files.

Every error is a :class:`ValueError`, so ``except ValueError`` keeps working
for callers who do not care which one it was.
"""


class LeverError(ValueError):
    """Base class of every error lever raises on purpose."""


class FileFormatError(LeverError):
    """A file lever wrote is missing, corrupt, truncated or of another version."""
