"""The documentation site: `mkdocs build --strict` succeeds offline, has the pages the issue names (a
reproduction page per record in docs/results/, the CLI and API references generated), loads nothing
from the network, and its search works in headless Chromium (Debian's, driven by playwright).

Needs the [docs] extra (MkDocs, Material, mkdocstrings) and, for the browser, the [tracking-tests]
extra's playwright and a Chromium (apt-get install chromium). RDVAE_DOCS_SCREENSHOTS=1 makes the browser
test also write the screenshots of the start page and a reproduction page into docs/.
"""

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from tests.helpers import need

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SCREENSHOTS = {"start": DOCS / "site-start.png", "reproduction": DOCS / "site-reproduction.png"}
REPRODUCTION_SHOWN = "elbo-surgery"   # the reproduction page of the screenshot


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    need("mkdocs", "docs")
    need("material", "docs")
    need("mkdocstrings_handlers.python", "docs")
    out = tmp_path_factory.mktemp("site") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                            cwd=ROOT, env=env, text=True, capture_output=True, timeout=600)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return out


def _pages(site: Path) -> set[str]:
    return {p.relative_to(site).as_posix() for p in site.rglob("index.html")}


def test_the_site_has_the_pages_of_the_issue(site):
    pages = _pages(site)
    for page in ("index.html", "getting-started/index.html", "concepts/index.html",
                 "guides/your-model/index.html", "guides/your-data/index.html", "guides/sharing/index.html",
                 "guides/evaluating/index.html", "guides/training/index.html", "guides/sweeps/index.html",
                 "guides/tracking/index.html", "guides/reproducing/index.html", "reproductions/index.html",
                 "reference/cli/index.html", "reference/api/index.html", "contributing/index.html"):
        assert page in pages, page
    for record in (DOCS / "results").glob("*.md"):   # one generated page per record
        assert f"reproductions/{record.stem}/index.html" in pages, record.name
    assert (site / "search" / "search_index.json").is_file()


def test_the_reproductions_overview_tabulates_the_claims(site):
    text = (site / "reproductions" / "index.html").read_text()
    columns = r"\s*".join(f"<th>{h}</th>" for h in ("paper", "claim", "here", "holds"))
    header = re.search(r"<thead>\s*<tr>\s*" + columns, text)
    assert header, "no paper | claim | here | holds table"
    from rdvae.registry import STUDIES

    for name in STUDIES.names():
        if (DOCS / "results" / f"{name}.md").exists():
            assert f'href="{name}/"' in text, name


def test_a_reproduction_page_shows_its_record_its_figures_and_the_command(site):
    page = (site / "reproductions" / REPRODUCTION_SHOWN / "index.html").read_text()
    text = re.sub(r"<[^>]+>", "", page)   # code is highlighted: tags between the words
    assert f"rdvae repro {REPRODUCTION_SHOWN} --scale smoke" in text
    images = re.findall(r'<img[^>]+src="([^"]+)"', page)
    folder = site / "reproductions" / REPRODUCTION_SHOWN
    assert images and all((folder / src).resolve().is_file() for src in images)


def test_the_cli_page_lists_every_option_of_every_command(site):
    import argparse

    from rdvae.cli import build_parser

    text = (site / "reference" / "cli" / "index.html").read_text()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        section = re.search(rf'id="rdvae-{re.escape(name)}"(.*?)(?=<h2 id="rdvae-|</article>)', text, re.S)
        assert section, name
        for action in parser._actions:
            for option in action.option_strings:
                assert f"{option}" in section.group(1), (name, option)


def test_the_api_page_documents_every_public_name(site):
    import rdvae

    text = (site / "reference" / "api" / "index.html").read_text()
    ids = set(re.findall(r'id="([\w.]+)"', text))
    for name in rdvae.__all__:
        assert any(i == name or i.endswith(f".{name}") for i in ids), name


EXTERNAL = re.compile(r"""<(?:script|img|iframe|source|audio|video)\b[^>]*\bsrc=["']?(?:https?:)?//"""
                      r"""|<link\b[^>]*\bhref=["']?(?:https?:)?//[^>]*>|@import\s+url\(["']?(?:https?:)?//"""
                      r"""|url\(["']?(?:https?:)?//""", re.I)


def test_no_page_or_stylesheet_refers_to_the_network(site):
    offending = []
    for path in [*site.rglob("*.html"), *site.rglob("*.css"), *site.rglob("*.js")]:
        text = path.read_text(errors="replace")
        for match in EXTERNAL.finditer(text):
            tag = text[match.start():match.start() + 200]
            if path.suffix == ".html" and re.match(r"<link\b[^>]*rel=[\"']?(canonical|alternate)", tag):
                continue
            offending.append(f"{path.relative_to(site)}: {tag[:120]}")
    assert offending == []


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium to open the site in (apt-get install chromium)")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(site):
    """The built site over HTTP on 127.0.0.1 (a browser runs no search worker for file:// pages)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_the_site_in_headless_chromium_searches_offline_and_loads_nothing_from_the_network(served, tmp_path):
    sync_api = need("playwright.sync_api", "tracking-tests")
    refused, failed = [], []
    shots = {"start": tmp_path / "start.png", "reproduction": tmp_path / "reproduction.png"}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(served)
                   else (refused.append(route.request.url), route.abort()))
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.goto(served, wait_until="networkidle")
        assert "rdvae" in page.title()
        page.screenshot(path=str(shots["start"]))

        page.click("input.md-search__input")   # opens the search (the header's field, at this width)
        page.keyboard.type("distortion")
        page.wait_for_selector(".md-search-result__item", timeout=20_000)
        hits = page.locator(".md-search-result__item").count()
        first = page.locator(".md-search-result__item a").first.get_attribute("href")
        assert hits > 0 and first.startswith(served)
        page.keyboard.press("Escape")

        page.goto(f"{served}reproductions/{REPRODUCTION_SHOWN}/", wait_until="networkidle")
        assert page.locator("article img").count() > 0
        assert page.evaluate("Array.from(document.querySelectorAll('article img'))"
                             ".every(i => i.naturalWidth > 0)")
        page.locator("article img").first.evaluate("e => e.scrollIntoView({block: 'center'})")   # a figure
        page.wait_for_timeout(600)   # the header's title fades to the page's name as it scrolls
        page.screenshot(path=str(shots["reproduction"]))
        browser.close()
    assert refused == [] and failed == []
    for shot in shots.values():
        assert shot.stat().st_size > 20_000   # a rendered page, not a blank one
    if os.environ.get("RDVAE_DOCS_SCREENSHOTS"):
        for key, shot in shots.items():
            shutil.copyfile(shot, SCREENSHOTS[key])
