"""The one exception type of the data layer."""

from __future__ import annotations

from pathlib import Path


class DataError(RuntimeError):
    """A dataset cannot be loaded: unknown name, bad option, missing or corrupt file.

    The message always says what is wrong, which file (absolute path) is concerned and
    what to do about it.
    """


def corrupt(path: Path, what: str) -> DataError:
    """The error for a file whose content is wrong."""
    return DataError(
        f"{path}: {what}. The file is corrupt or incomplete: delete it so that it is "
        "downloaded again (or replace it with a good copy)."
    )
