"""Optional trackers: their packages are pip extras, imported only when a run logs to them."""

from __future__ import annotations

import importlib

from ..errors import ConfigError


def require(module: str, extra: str, tracker: str):
    """The imported module; a ConfigError naming the pip command when its extra is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ConfigError(f"log {tracker!r} needs the {extra} package, which is not installed ({err}): "
                          f"pip install 'rdvae[{extra}]' (or drop {tracker} from --log)") from None
