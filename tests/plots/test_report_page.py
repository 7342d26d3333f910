"""`rdvae report`: the page holds every run's point, works with the network off (opened in headless
Chromium with every non-file request refused), and a click shows the run's images."""

import json
import re
import shutil
import sys

import pytest
from tests.helpers import need, needs

from rdvae.cli import main
from rdvae.sweep import ResultsTable, SweepSpec, product, run_sweep, sweep

BASE = {"dataset": "digits", "binarize": "static", "latent_dim": 2, "model.hidden": [16], "epochs": 1,
        "batch_size": 256, "eval_batch_size": 500}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    need("plotly", "report")
    out = tmp_path_factory.mktemp("report")
    spec = SweepSpec(base=BASE, points=product(sweep("family", ["mlp", "mlp-v"]), sweep("beta", [0.3, 3.0])))
    run_sweep(out / "sw", spec, workers=1, progress=False)
    assert main(["report", str(out / "sw"), "--out", str(out / "report.html"), "--json"]) == 0
    return out


def _embedded(text: str) -> dict:
    found = re.search(r'<script type="application/json" id="rdvae-data">(.*?)</script>', text, re.S)
    return json.loads(found.group(1))


def test_the_page_embeds_every_run_and_loads_nothing_from_the_network(report):
    text = (report / "report.html").read_text()
    rows = ResultsTable(report / "sw").read()
    runs = _embedded(text)["runs"]
    assert sorted((r["run_dir"], r["rate"], r["distortion"]) for r in runs) == sorted(
        (r["run_dir"], r["rate"], r["distortion"]) for r in rows)
    assert all(r["samples"].startswith("data:image/png;base64,") for r in runs)
    assert not re.search(r"<script[^>]+src=", text)   # plotly is inlined
    assert not re.search(r"<(img|link)[^>]+(src|href)=\"https?:", text)


def test_a_run_directory_gets_a_page_too(report, tmp_path):
    run_dir = next((report / "sw" / "runs").iterdir())
    assert main(["report", str(run_dir), "--out", str(tmp_path / "one.html")]) == 0
    (run,) = _embedded((tmp_path / "one.html").read_text())["runs"]
    assert run["run_dir"] == run_dir.name


@needs("plotly", "report")   # without plotly, report stops at the message the next test checks
def test_report_refuses_a_folder_that_is_no_sweep_or_run(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    assert "neither a sweep directory (results.csv) nor a run directory" in capsys.readouterr().err


def test_report_without_plotly_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly", None)   # import plotly -> ImportError, as when not installed
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "pip install 'rdvae[report]'" in err


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium to open the page in (apt-get install chromium)")


def test_the_page_plots_the_points_offline_in_headless_chromium(report):
    sync_api = need("playwright.sync_api", "tracking-tests")
    rows = {r["run_dir"]: r for r in ResultsTable(report / "sw").read()}
    refused = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                   else (refused.append(route.request.url), route.abort()))
        page.goto((report / "report.html").as_uri())
        page.wait_for_selector("#rd-plane .scatterlayer .point")
        traces = page.evaluate("""() => document.getElementById('rd-plane').data.map(
            t => ({x: t.x, y: t.y, runs: t.customdata.map(c => c[1])}))""")
        plotted = {run: (x, y) for t in traces for run, x, y in zip(t["runs"], t["x"], t["y"], strict=True)}
        assert plotted == {k: (r["rate"], r["distortion"]) for k, r in rows.items()}
        point = page.locator("#rd-plane .scatterlayer .point").first.bounding_box()
        page.mouse.move(point["x"] + point["width"] / 2, point["y"] + point["height"] / 2)
        page.mouse.click(point["x"] + point["width"] / 2, point["y"] + point["height"] / 2)
        page.wait_for_function("document.getElementById('rdvae-samples').src.startsWith('data:image/png')")
        shown = page.text_content("#rdvae-run")
        browser.close()
    assert any(run in shown for run in rows)
    assert refused == []   # nothing asked for the network
