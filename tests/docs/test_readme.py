"""The README: one screen for a newcomer that begins with the two commands (exactly the ones CI runs),
says nothing the site contradicts, and links only to what exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

# the README's first lines, byte for byte: install and run the quickstart, then the tests
FIRST_LINES = """# rdvae

```bash
pip install torch==2.13.0 && pip install -e . && rdvae quickstart
pip install -e '.[dev]' && python -m pytest
```
"""


def test_the_readme_begins_with_the_two_commands():
    assert README.read_bytes().startswith(FIRST_LINES.encode())


def test_the_site_gives_the_same_two_commands():
    commands = FIRST_LINES.split("```bash\n")[1].split("```")[0]
    for page in ("docs/index.md", "docs/getting-started.md"):
        assert f"```bash\n{commands}```" in (ROOT / page).read_text(), page


def test_the_readme_fits_on_a_screen_and_its_links_resolve():
    text = README.read_text()
    assert len(text.splitlines()) <= 45
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'<img[^>]+src="([^"]+)"', text)
    assert len(targets) >= 8
    for target in targets:
        if not re.match(r"[a-z]+:", target):
            assert (ROOT / target.split("#")[0]).exists(), target


def test_the_readme_links_every_guide():
    text = README.read_text()
    for page in ("docs/getting-started.md", "docs/concepts.md", "docs/guides/your-model.md",
                 "docs/guides/training.md", "docs/guides/evaluating.md", "docs/guides/sweeps.md",
                 "docs/guides/tracking.md", "docs/contributing.md"):
        assert f"]({page})" in text, page
