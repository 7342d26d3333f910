"""The Reproductions pages generated from docs/results/*.md (docs/tools/reproductions.py): links rewritten
for the pages' place, links that cannot resolve neutralised (and reported), claims tabulated, figures
the text does not show added. No MkDocs needed."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reproductions():
    path = ROOT / "docs" / "tools" / "reproductions.py"
    spec = importlib.util.spec_from_file_location("docs_tools_reproductions", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


RECORD = """# A toy study: `rdvae repro toy`

Setup in [the other record](other.md#setup), see also [a heading that is gone](other.md#gone) and
[this page's results](#results). The code: [study.py](../../src/rdvae/studies/toy.py), the runs in
[runs/toy](runs/toy/results.csv), a [paper](https://example.org/paper.pdf).

![the curve](toy-curve.png)
![a figure not made yet](toy-missing.png)

```bash
rdvae repro toy --scale cpu --out runs/toy   # [not a link](inside-code.md)
```

## Results

| claim | paper | here | holds? |
|---|---|---|---|
| R falls as beta grows | Fig. 1 | 3.1 > 0.4 | yes |
| D \\| R trade-off is convex | Fig. 2 | `a|b` | **no** |

## What it shows

- **The rate falls.** As it should.
"""


@pytest.fixture()
def docs(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "toy.md").write_text(RECORD)
    (results / "other.md").write_text("# Other\n\n## Setup\n\nText.\n")
    for name in ("toy-curve.png", "toy-extra.png", "other.png"):
        (results / name).write_bytes(b"\x89PNG")
    return tmp_path


def test_links_are_rewritten_or_neutralised(reproductions, docs):
    pages, records = reproductions.generate(docs)
    page = pages["reproductions/toy.md"]
    assert "[the other record](other.md#setup)" in page
    assert "[a heading that is gone](other.md)" in page             # the anchor dropped, the page kept
    assert "[this page's results](#results)" in page
    assert "![the curve](../results/toy-curve.png)" in page
    assert "a [paper](https://example.org/paper.pdf)" in page        # the web is left as it is
    assert "study.py (`../../src/rdvae/studies/toy.py`)" in page      # a source file: named, not linked
    assert "](runs/toy" not in page and "toy-missing.png)" not in page
    assert "# [not a link](inside-code.md)" in page                # code blocks are left alone
    toy = next(r for r in records if r.name == "toy")
    assert sorted(toy.neutralised) == sorted([
        "other.md#gone (no such heading in other.md; linked to the page)",
        "../../src/rdvae/studies/toy.py (missing)", "runs/toy/results.csv (missing)",
        "toy-missing.png (missing)"])


def test_figures_the_text_does_not_show_are_added(reproductions, docs):
    pages, _ = reproductions.generate(docs)
    page = pages["reproductions/toy.md"]
    assert "![toy-extra.png](../results/toy-extra.png)" in page
    assert page.count("toy-curve.png") == 1


def test_claims_are_read_from_claim_tables(reproductions, docs):
    _, records = reproductions.generate(docs)
    toy = next(r for r in records if r.name == "toy")
    claims = reproductions.claims(toy)
    assert [(c.claim, c.paper, c.here, c.holds) for c in claims] == [
        ("R falls as beta grows", "Fig. 1", "3.1 > 0.4", "yes"),
        ("D \\| R trade-off is convex", "Fig. 2", "`a|b`", "**no**")]
    assert reproductions.findings(toy) == ["The rate falls."]


def test_the_real_records_generate_a_page_each_and_an_overview(reproductions):
    pages, records = reproductions.generate(ROOT / "docs")
    assert "reproductions/index.md" in pages
    assert {r.name for r in records} == {p.stem for p in (ROOT / "docs" / "results").glob("*.md")}
    overview = pages["reproductions/index.md"]
    assert "| paper | claim | here | holds |" in overview
    for record in records:
        if record.study is not None:
            assert f"]({record.name}.md)" in overview
            assert f"rdvae repro {record.name} --scale smoke" in pages[record.page]
