"""Run the code blocks of a Markdown page, in order, as a reader would (docs/contributing.md, "Examples
that run", states the rules).

- ```python blocks run in one namespace per page (a later block sees an earlier block's names), in
  the page's own working folder.
- ```bash (sh, shell) blocks run there too. Each command is an `rdvae ...` command line, run through
  the same entry point as the installed `rdvae` script (`rdvae.cli.main`) in this process, so that a
  page of several commands costs no interpreter starts; `export NAME=VALUE` and leading `NAME=VALUE`
  assignments set the environment. Any other command (pip, cd, a pipe, tensorboard ...) makes the
  block fail unless it is marked as not run.
- A block with a `title="FILE"` attribute is written to FILE in the working folder instead of run
  (a plugin file, a sweep spec), so that the blocks after it can use it.
- `<!-- docs-test: skip REASON -->` on the line above a block: not run, for that reason (one is required).
  `<!-- docs-test: needs MODULE EXTRA -->`: run only when MODULE can be imported, else skipped naming
  rdvae's extra EXTRA that installs it.
- Blocks of any other language (text, toml, json, ...) are shown, not run.

Nothing here needs MkDocs: the examples also run in the test pass with only the [dev] extra.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PYTHON = {"python", "py", "python3"}
SHELL = {"bash", "sh", "shell"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*?)[ \t]*$")
MARK = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<what>skip|needs)\b\s*(?P<rest>.*?)\s*-->\s*$")
ATTRIBUTE = re.compile(r"""(\w+)=("[^"]*"|'[^']*'|\S+)""")
OPERATORS = {"&&", "||", "|", ";", ">", ">>", "<", "&", "2>", "2>&1"}


class ExampleFailed(AssertionError):
    """A code block of a page did not run: page, line, the block's command and what it printed."""


@dataclass
class Block:
    page: Path
    line: int                        # the line of the block's first code line (1-based)
    language: str
    code: str
    attributes: dict = field(default_factory=dict)
    skip: str | None = None          # why the block is not run
    needs: tuple[str, str] | None = None   # (module, extra)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def kind(self) -> str:
        """file (written), python, shell, or shown (any other language: not code to run)."""
        if "title" in self.attributes:
            return "file"
        if self.language in PYTHON:
            return "python"
        if self.language in SHELL:
            return "shell"
        return "shown"


def blocks(page: Path, text: str | None = None) -> list[Block]:
    """The fenced code blocks of a Markdown page (also indented ones, as in admonitions and lists),
    with the docs-test mark on the line above each."""
    lines = (page.read_text(encoding="utf-8") if text is None else text).splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, info = opening.group("indent"), opening.group("fence"), opening.group("info")
        language = (info.split() or [""])[0].lstrip(".{").rstrip("}").lower()
        attributes = {k: v.strip("\"'") for k, v in ATTRIBUTE.findall(info)}
        mark = MARK.match(lines[i - 1]) if i > 0 else None
        body, j = [], i + 1
        while j < len(lines):
            closing = FENCE.match(lines[j])
            if closing and closing.group("fence").startswith(fence) and not closing.group("info"):
                break
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        block = Block(page, i + 2, language, "\n".join(body) + "\n", attributes)
        if mark and mark.group("what") == "skip":
            block.skip = mark.group("rest")
        elif mark:
            words = mark.group("rest").split()
            block.needs = (words[0], words[1] if len(words) > 1 else "?") if words else ("?", "?")
        found.append(block)
        i = j + 1
    return found


# -- what a page may change, put back afterwards ------------------------------------------------------

def _registries() -> list:
    import rdvae.engine.optimizers
    import rdvae.evaluate.measures
    import rdvae.sweep.executors  # noqa: F401 - the modules that hold registries, imported to find them
    from rdvae.registry import Registry

    found = []
    for name, module in list(sys.modules.items()):
        if name == "rdvae" or name.startswith("rdvae."):
            found += [v for v in vars(module).values() if isinstance(v, Registry)]
    return list({id(r): r for r in found}.values())


@contextlib.contextmanager
def isolated(folder: Path):
    """Run in `folder` with the environment, registries, torch threads, sys.path and the plugin consent
    as they were afterwards."""
    import torch

    from rdvae import plugins

    for registry in _registries():
        registry.load_builtins()   # rdvae's own names first: a page's additions are then all that is undone
    saved_registries = [(r, dict(r._entries), dict(r._aliases)) for r in _registries()]
    saved_env, saved_cwd, saved_path = dict(os.environ), os.getcwd(), list(sys.path)
    saved_threads = torch.get_num_threads()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path
        torch.set_num_threads(saved_threads)
        plugins.forget_consent()
        for registry, entries, aliases in saved_registries:
            registry._entries.clear()
            registry._entries.update(entries)
            registry._aliases.clear()
            registry._aliases.update(aliases)


# -- running ------------------------------------------------------------------------------------------

def commands(code: str) -> list[tuple[int, str]]:
    """(line offset in the block, command line) of a shell block, continuation lines joined."""
    out, current, start = [], "", 0
    for n, line in enumerate(code.splitlines()):
        if not current:
            start = n
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            out.append((start, current.strip()))
        current = ""
    if current.strip():
        out.append((start, current.strip()))
    return out


def run_shell(block: Block) -> None:
    from rdvae.cli import main

    for offset, command in commands(block.code):
        where = f"{block.page}:{block.line + offset}"
        words = shlex.split(command, comments=True)
        if not words:
            continue
        if OPERATORS.intersection(words) or any(w.endswith(";") for w in words):
            raise ExampleFailed(f"{where}: `{command}` uses shell operators, which the docs test does not "
                                "run; mark the block <!-- docs-test: skip REASON --> or split it")
        env = {}
        while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
            key, value = words.pop(0).split("=", 1)
            env[key] = os.path.expandvars(value)
        if not words:
            os.environ.update(env)
            continue
        if words[0] == "export":
            for assignment in words[1:]:
                key, _, value = assignment.partition("=")
                os.environ[key] = os.path.expandvars(value)
            continue
        if words[0] != "rdvae":
            raise ExampleFailed(f"{where}: `{command}` is not an rdvae command, which the docs test does not "
                                "run; mark the block <!-- docs-test: skip REASON --> (the reason is shown to "
                                "no reader, only to the tests)")
        saved = dict(os.environ)
        os.environ.update(env)
        output = io.StringIO()
        try:
            with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
                code = main([os.path.expandvars(w) for w in words[1:]])
        except SystemExit as stop:   # argparse refusing the command line
            code = stop.code
        except Exception as err:
            raise ExampleFailed(f"{where}: `{command}` raised {type(err).__name__}: {err}\n"
                                f"{output.getvalue()[-3000:]}") from err
        finally:
            os.environ.clear()
            os.environ.update(saved)
        if code not in (0, None):
            raise ExampleFailed(f"{where}: `{command}` exited {code}:\n{output.getvalue()[-3000:]}")


def run_python(block: Block, namespace: dict) -> None:
    source = "\n" * (block.line - 1) + block.code   # tracebacks name the page's own line numbers
    try:
        exec(compile(source, str(block.page), "exec"), namespace)
    except Exception as err:
        raise ExampleFailed(f"{block.where}: the Python block raised {type(err).__name__}: {err}") from err


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def run_page(page: Path, folder: Path, text: str | None = None) -> dict:
    """Run every block of `page` in `folder`; returns {"ran": [...], "skipped": [(where, why)]}. Raises
    ExampleFailed at the first block that fails."""
    report = {"ran": [], "skipped": [], "seconds": {}}
    namespace = {"__name__": "__docs_example__"}
    found = blocks(page, text)   # read before changing folder (`page` may be relative)
    with isolated(folder):
        sys.path.insert(0, str(folder))   # a page's files import as modules, as beside a script
        for block in found:
            if block.kind == "shown":
                continue
            if block.skip is not None:
                report["skipped"].append((block.where, block.skip))
                continue
            if block.needs and not installed(block.needs[0]):
                report["skipped"].append((block.where, f"needs {block.needs[0]} (pip install "
                                                       f"'rdvae[{block.needs[1]}]')"))
                continue
            started = time.perf_counter()
            if block.kind == "file":
                target = folder / block.attributes["title"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.code, encoding="utf-8")
            elif block.kind == "python":
                run_python(block, namespace)
            else:
                run_shell(block)
            report["ran"].append(block.where)
            report["seconds"][block.where] = time.perf_counter() - started
    return report
