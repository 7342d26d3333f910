"""What a tracked sweep left behind, read back with each tracker's own reader, and its report page
opened offline in headless Chromium (a screenshot). The numbers of docs/results/tracking.md.

    rdvae sweep --dataset digits --binarize static --latent-dim 4 --set 'model.hidden=[64]' \\
        --grid "family=mlp,mlp-v" --grid "beta=0.1,0.3,1,3,10" --epochs 5 \\
        --log tensorboard --log mlflow --workers 1 --out SWEEP
    python benchmarks/tracking_check.py SWEEP --screenshot docs/results/tracking-report.png
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path


def tensorboard_runs(sweep: Path) -> list[dict]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    found = []
    for log_dir in sorted(sweep.glob("runs/*/tensorboard")):
        events = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
        events.Reload()
        tags = events.Tags()
        hparams = {}
        for content in events.PluginTagToContent("hparams").values():
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            if data.WhichOneof("data") == "session_start_info":
                hparams = {k: v.string_value or v.number_value
                           for k, v in data.session_start_info.hparams.items()}
        found.append({"run": log_dir.parent.name, "scalar_tags": len(tags["scalars"]),
                      "images": sorted(tags["images"]),
                      "train_loss_points": len(events.Scalars("train/loss")),
                      "valid_rate": [round(e.value, 3) for e in events.Scalars("valid/rate")],
                      "final_rate": round(events.Scalars("final/rate")[0].value, 3),
                      "hparams_beta": hparams.get("beta"), "hparams_family": hparams.get("family")})
    return found


def mlflow_runs(sweep: Path) -> list[dict]:
    import mlflow

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")   # MLflow 3 reads its file store only so
    client = mlflow.MlflowClient(tracking_uri=(sweep.resolve() / "mlruns").as_uri())
    experiment = client.get_experiment_by_name(sweep.resolve().name)
    runs = client.search_runs([experiment.experiment_id], order_by=["params.beta ASC"])
    return [{"run": r.info.run_name, "status": r.info.status, "params": len(r.data.params),
             "tags_beta": r.data.tags.get("beta"), "tags_family": r.data.tags.get("family"),
             "final_rate": round(r.data.metrics["final/rate"], 3),
             "valid_rate_points": len(client.get_metric_history(r.info.run_id, "valid/rate")),
             "artifacts": sorted(a.path for a in client.list_artifacts(r.info.run_id))} for r in runs]


def screenshot(sweep: Path, page_path: Path, png: Path) -> dict:
    from playwright.sync_api import sync_playwright

    from rdvae.plots.report_page import report_page

    started = time.perf_counter()
    written = report_page(sweep, page_path)
    seconds = time.perf_counter() - started
    refused = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:")
                   else (refused.append(r.request.url), r.abort()))
        page.goto(page_path.resolve().as_uri())
        page.wait_for_selector("#rd-plane .scatterlayer .point")
        points = page.evaluate(
            "() => document.getElementById('rd-plane').data.reduce((n, t) => n + t.x.length, 0)")
        box = page.locator("#rd-plane .scatterlayer .point").first.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_function("document.getElementById('rdvae-samples').src.startsWith('data:image/png')")
        page.wait_for_timeout(300)
        page.screenshot(path=str(png), full_page=False)
        shown = page.text_content("#rdvae-run")
        browser.close()
    return {"page_bytes": written["bytes"], "page_seconds": round(seconds, 1), "runs": written["runs"],
            "points_plotted": points, "clicked": shown, "network_requests": refused}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--screenshot", type=Path, default=Path("tracking-report.png"))
    args = parser.parse_args()
    result = {"tensorboard": tensorboard_runs(args.sweep), "mlflow": mlflow_runs(args.sweep),
              "report": screenshot(args.sweep, args.sweep / "report.html", args.screenshot)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
