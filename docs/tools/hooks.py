"""MkDocs hooks (mkdocs.yml `hooks:`): the pages generated when the site is built.

- reference/cli.md from the `rdvae` argparse parsers (cli_reference.py),
- reference/api.md from the public names and their docstrings (api_reference.py, rendered by
  mkdocstrings),
- reproductions/*.md from the records in docs/results/*.md (reproductions.py), with the
  navigation of that section.

Nothing is written into docs/: the pages exist only in the build.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import api_reference  # noqa: E402
import cli_reference  # noqa: E402
import reproductions  # noqa: E402

log = logging.getLogger("mkdocs.hooks.rdvae")
_generated: dict[str, str] = {}


def _generated_page(item) -> bool:
    value = item if isinstance(item, str) else next(iter(item.values()))
    return isinstance(value, str) and value.startswith("reproductions/")


def _replace_reproductions(nav: list, section: list) -> bool:
    """Fill the nav's "Reproductions" section with the generated pages, keeping the hand-written ones
    it names (after the overview)."""
    for i, item in enumerate(nav):
        if isinstance(item, dict):
            (title, value), = item.items()
            if title == "Reproductions":
                kept = [v for v in (value if isinstance(value, list) else [value]) if not _generated_page(v)]
                nav[i] = {title: [section[0], *kept, *section[1:]]}
                return True
            if isinstance(value, list) and _replace_reproductions(value, section):
                return True
    return False


def on_config(config):
    docs = Path(config["docs_dir"])
    pages, records = reproductions.generate(docs)
    for record in records:
        for link in record.neutralised:
            log.info("reproductions/%s.md: neutralised the link %s", record.name, link)
    _generated.clear()
    _generated.update(pages)
    _generated["reference/cli.md"] = cli_reference.cli_markdown()
    _generated["reference/api.md"] = api_reference.api_markdown()
    if config["nav"] is not None and not _replace_reproductions(config["nav"], reproductions.nav(records)):
        config["nav"].append({"Reproductions": reproductions.nav(records)})
    return config


def on_files(files, config):
    from mkdocs.structure.files import File

    for path, content in _generated.items():
        existing = files.get_file_from_path(path)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, path, content=content))
    return files
