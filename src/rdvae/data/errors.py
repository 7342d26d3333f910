"""The one exception type of the data layer."""

from __future__ import annotations


class DataError(RuntimeError):
    """A dataset cannot be loaded: unknown name, bad option, missing or corrupt file.

    The message always says what is wrong, which file (absolute path) is concerned and
    what to do about it.
    """
