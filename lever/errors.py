"""The exceptions lever raises for bad input and bad files, and the check of a name against its vocabulary.

Every error is a :class:`ValueError`, so ``except ValueError`` keeps working
for callers who do not care which one it was.
"""


class LeverError(ValueError):
    """Base class of every error lever raises on purpose."""


class FileFormatError(LeverError):
    """A file lever wrote is missing, corrupt, truncated or of another version."""


def check_choice(kind: str, name, valid):
    """``name`` itself if it is in ``valid``, else a :class:`LeverError` ``unknown KIND 'name'; valid: ...``."""
    if name not in valid:
        raise LeverError(f"unknown {kind} {name!r}; valid: {', '.join(valid)}")
    return name
