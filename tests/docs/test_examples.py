"""Every code block of the site's hand-written pages runs (or says why not), and a broken one fails.

The runner (tests/docs/markdown_examples.py) needs no MkDocs, so these tests run in the [dev] pass too.
"""

from pathlib import Path

import pytest
from tests.docs.markdown_examples import ExampleFailed, blocks, run_page

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def hand_written_pages() -> list[Path]:
    """The Markdown pages of docs/ that are written by hand: not the records in docs/results/ (shown as
    they are, generated into the Reproductions pages), not docs/tools/, not drafts named _*.md."""
    return sorted(p for p in DOCS.rglob("*.md") if not p.name.startswith("_")
                  and not {"results", "tools"} & set(p.relative_to(DOCS).parts[:-1]))


PAGES = hand_written_pages()


def test_the_pages_are_found():
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"index.md", "getting-started.md", "concepts.md", "contributing.md", "guides/training.md",
            "guides/evaluating.md", "guides/sweeps.md", "guides/your-model.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_the_examples_of_a_page_run(page, tmp_path):
    report = run_page(page, tmp_path)
    runnable = [b for b in blocks(page) if b.kind != "shown"]
    assert len(report["ran"]) + len(report["skipped"]) == len(runnable)


def test_every_block_that_is_not_run_says_why():
    for page in PAGES:
        for block in blocks(page):
            if block.skip is not None:
                assert block.skip.strip(), f"{block.where}: <!-- docs-test: skip --> needs a reason"
            if block.needs is not None:
                module, extra = block.needs
                assert module != "?" and extra != "?", f"{block.where}: needs MODULE EXTRA"


def test_the_guides_run_most_of_their_examples():
    """Marking blocks as not run is for what cannot run here, not a way out: most blocks run."""
    marked = [b for p in PAGES for b in blocks(p) if b.kind != "shown" and b.skip is not None]
    run = [b for p in PAGES for b in blocks(p) if b.kind != "shown" and b.skip is None]
    assert len(run) > 3 * len(marked), [b.where for b in marked]


BROKEN = """# A broken page

```python
x = 1
y = x + undefined_name
```
"""


def test_a_broken_python_example_fails_naming_its_page_and_line(tmp_path):
    page = tmp_path / "broken.md"
    page.write_text(BROKEN)
    with pytest.raises(ExampleFailed, match=r"broken\.md:4: .*NameError.*undefined_name"):
        run_page(page, tmp_path)


@pytest.mark.parametrize("block,message", [
    ("```bash\nrdvae train --epochs 0 --out runs/x\n```\n",
     r"broken\.md:2: `rdvae train --epochs 0 .*` exited 2"),
    ("```bash\nrdvae train --no-such-option\n```\n", r"exited 2"),
    ("```bash\npip install rdvae\n```\n", r"not an rdvae command.*docs-test: skip"),
    ("```bash\nrdvae list families | head -3\n```\n", r"shell operators"),
    ("```python title=\"plugin.py\"\nx = 1\n```\n\n"
     "```bash\nrdvae train --plugin missing.py --epochs 1\n```\n",
     r"broken\.md:6: .*exited 2"),
])
def test_a_broken_shell_example_fails(tmp_path, block, message):
    page = tmp_path / "broken.md"
    page.write_text(block)
    with pytest.raises(ExampleFailed, match=message):
        run_page(page, tmp_path)


def test_marks_skip_a_block_and_name_the_reason_or_the_extra(tmp_path):
    page = tmp_path / "marked.md"
    page.write_text("<!-- docs-test: skip costs an hour -->\n```bash\npip install x\n```\n\n"
                    "<!-- docs-test: needs no_such_module_here someextra -->\n"
                    "```python\nraise SystemExit\n```\n\n"
                    "```text\nnot code\n```\n\n```python title=\"data.txt\"\nhello\n```\n")
    report = run_page(page, tmp_path)
    assert report["skipped"] == [(f"{page}:3", "costs an hour"),
                                 (f"{page}:8", "needs no_such_module_here (pip install 'rdvae[someextra]')")]
    assert (tmp_path / "data.txt").read_text() == "hello\n"


def test_a_page_leaves_the_registries_as_they_were(tmp_path):
    from rdvae.registry import FAMILIES

    page = tmp_path / "plugin.md"
    page.write_text("```python\nfrom rdvae import register_family\n"
                    "register_family('docs-test-family', encoder='mlp', decoder='mlp', marginal='-',"
                    " latent_dim=2)\n"
                    "```\n")
    run_page(page, tmp_path)
    assert "docs-test-family" not in FAMILIES
