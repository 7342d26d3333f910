"""The errors a user's input can cause, each a message that names the field, the value and what is
allowed. The command line prints them as one line (no traceback) and exits with status 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(ValueError):
    """A configuration, option or name that cannot be used, with what to change."""


def did_you_mean(given: str, known: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest known name, or ''."""
    close = difflib.get_close_matches(str(given), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_names(kind: str, given: Iterable[str], known: Iterable[str], where: str = "") -> ConfigError:
    """The error for names that are not among the known ones, each with a suggestion."""
    known = sorted(known)
    hints = ", ".join(f"{name!r}{did_you_mean(name, known)}" for name in given)
    valid = ", ".join(known) if known else "none"
    return ConfigError(f"unknown {kind}{where}: {hints}; valid: {valid}")


class EvaluationError(ValueError):
    """A measurement that cannot be trusted: non-finite inputs or figures, or an estimate outside what
    the math allows (e.g. I_q above log N); a model that diverged produces these."""
