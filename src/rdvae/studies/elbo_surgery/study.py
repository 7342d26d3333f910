"""ELBO surgery (Hoffman & Johnson 2016, as reviewed in papers/004): VAEs with 2, 10 and 20
latent dimensions on binarized MNIST with the isotropic Gaussian marginal, and the table

    ELBO | average KL | index-code MI I_q(n;z) | marginal KL(q(z) || m(z))

over the N = 50 000 training points (log N = 10.82), beside the published one; then the same
models with a VampPrior marginal, which the paper did not have.

The model is rdvae's `mlp` family (encoder 784-512-256 and decoder 256-512-784, gated units,
Bernoulli likelihood); `mlp-v` swaps in the VampPrior. Scales:
    smoke  digits (8x8, 1297 training points), latent 2 and 4, 1 epoch: seconds, for tests
    cpu    binarized MNIST, latent 2/10/20, 15 epochs (VampPrior: 10 epochs, 100 pseudo-inputs;
           what fitted in the shared 2-core machine's time);
           q(z) over all 50 000 training points, 4000 draws of z for the outer expectation
           (400 of them for the TC / dimension-wise split); N(0, I) at 10 and 20 latents also
           trained for the VampPrior's 10 epochs, for a comparison at equal training
    paper  binarized MNIST, latent 2/10/20, 300 epochs, VampPrior with 500 pseudo-inputs
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

from rdvae.evaluate import elbo_surgery, evaluate_model, format_surgery
from rdvae.rundir import WEIGHTS, read_json, write_json
from rdvae.train import TrainConfig, load_run, train

from ..common import check_scale, markdown_table

NAME = "elbo-surgery"
DESCRIPTION = ("Hoffman & Johnson's ELBO surgery: average KL = index-code MI + marginal KL for "
               "2/10/20-d VAEs on binarized MNIST, N(0, I) and VampPrior marginals")

# latent dim -> (ELBO, average KL, index-code MI, marginal KL), nats, training set N = 50 000
PUBLISHED = {2: (-129.63, 7.41, 7.20, 0.21), 10: (-88.95, 19.17, 10.82, 8.35),
             20: (-87.45, 20.20, 10.67, 9.53)}
MARGINALS = {"gaussian": "mlp", "vamp": "mlp-v"}
MARGINAL_NAMES = {"gaussian": "N(0, I)", "vamp": "VampPrior"}

SCALES = {
    # matched: latent dims at which N(0, I) is also trained for vamp_epochs (equal training)
    "smoke": dict(dataset="digits", binarize="static", latent_dims=(2, 4), epochs=1, vamp_epochs=1,
                  model={"hidden": [32]}, vamp={"pseudo_inputs": 10}, points=None, split_points=200,
                  matched=(2,)),
    "cpu": dict(dataset="binarized-mnist", binarize=None, latent_dims=(2, 10, 20), epochs=15,
                vamp_epochs=10, model={}, vamp={"pseudo_inputs": 100}, points=4000, split_points=400,
                matched=(10, 20)),
    "paper": dict(dataset="binarized-mnist", binarize=None, latent_dims=(2, 10, 20), epochs=300,
                  vamp_epochs=300, model={}, vamp={"pseudo_inputs": 500}, points=None, split_points=10000,
                  matched=()),
}


def run_config(scale: str, marginal: str, latent_dim: int) -> TrainConfig:
    """The training run of one (marginal, latent dim) cell at a scale."""
    s = SCALES[check_scale(scale)]
    model = {**s["model"], **(s["vamp"] if marginal == "vamp" else {})}
    return TrainConfig(dataset=s["dataset"], binarize=s["binarize"], family=MARGINALS[marginal],
                       latent_dim=latent_dim, model=model, batch_size=128,
                       epochs=s["vamp_epochs"] if marginal == "vamp" else s["epochs"],
                       lr=1e-3, seed=0)


def measure(run_dir: Path, points: int | None, split_points: int | None, seed: int = 0) -> dict:
    """ELBO and the surgery of a trained run over its whole training split (q(z) over all of
    it; `points` draws of z for the outer expectation, `split_points` of them for TC / dim-wise).

    Cached in RUN_DIR/surgery-train.json, keyed by these settings and the weights file, so a
    rerun of the reproduction reuses what was measured."""
    run_dir = Path(run_dir)
    weights = (run_dir / WEIGHTS).stat()
    key = {"points": points, "split_points": split_points, "seed": seed,
           "weights": [weights.st_size, weights.st_mtime_ns]}
    cache = run_dir / "surgery-train.json"
    if cache.exists():
        cached = read_json(cache)
        if cached.get("key") == key:
            return cached["row"]
    trained = load_run(run_dir)
    x = trained.dataset.split("train")
    started = time.monotonic()
    figures = evaluate_model(trained.model, x, seed=seed, diagnostics=False)
    surgery = elbo_surgery(trained.model, x, points=points, dimension_points=split_points, seed=seed)
    summary = trained.run.read_summary()
    row = {
        "elbo": figures["elbo"], "elbo_se": figures["elbo_se"], "rate": figures["rate"],
        "distortion": figures["distortion"], "test_elbo": summary.get("elbo"),
        **surgery.as_dict(prefix=""), "surgery_seconds": time.monotonic() - started,
        "train_seconds": summary.get("train_seconds"), "report": format_surgery(surgery),
    }
    write_json(cache, {"key": key, "row": row})
    return row


def _fmt(value, se=None, digits=2) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" + (f" ± {se:.2f}" if se is not None else "")


def table(rows: list[dict], with_published: bool = True) -> str:
    """Markdown: measured beside published, one line per (marginal, latent dim)."""
    lines = []
    for r in rows:
        lines.append([
            MARGINAL_NAMES[r["marginal"]], r["latent_dim"], r.get("epochs", ""), _fmt(r["elbo"]),
            _fmt(r["avg_kl"], r["avg_kl_se"]), _fmt(r["index_code_mi"], r["index_code_mi_se"]),
            _fmt(r["marginal_kl"], r["marginal_kl_se"]), _fmt(r["total_correlation"]),
            _fmt(r["dimension_kl"]), _fmt(r["marginal_dependence"]), f"{r['mi_limit']:.2f}",
            _fmt(r["test_elbo"])])
        if with_published and r["marginal"] == "gaussian" and r["latent_dim"] in PUBLISHED:
            elbo, kl, mi, mkl = PUBLISHED[r["latent_dim"]]
            lines.append(["published", r["latent_dim"], "", f"{elbo:.2f}", f"{kl:.2f}", f"{mi:.2f}",
                          f"{mkl:.2f}", "", "", "", "10.82", ""])
    return markdown_table(["marginal", "latent", "epochs", "ELBO (train)", "avg KL", "index-code MI",
                           "marginal KL", "TC", "dim-wise KL", "m-dependence", "log N", "ELBO (test)"], lines)


def figure_rows(rows: list[dict], with_published: bool) -> list[dict]:
    """Bars grouped by latent dimension: published, N(0, I), VampPrior."""
    out = []
    for d in sorted({r["latent_dim"] for r in rows}):
        if with_published and d in PUBLISHED:
            _, _, mi, mkl = PUBLISHED[d]
            out.append({"label": "paper", "group": f"{d} latents", "published": True,
                        "index_code_mi": mi, "marginal_kl": mkl, "mi_limit": math.log(50_000)})
        for r in rows:
            if r["latent_dim"] == d:
                out.append({"label": MARGINAL_NAMES[r["marginal"]], **r, "group": f"{d} latents"})
    return out


def run(scale: str, out: Path, progress: bool = True) -> dict:
    from rdvae.plots.surgery import plot_surgery

    s = SCALES[check_scale(scale)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started, rows = time.monotonic(), []
    for marginal in MARGINALS:
        for d in s["latent_dims"]:
            run_dir = out / f"{marginal}-d{d}"
            config = run_config(scale, marginal, d)
            train(config, run_dir, resume=True, progress=progress)  # a finished run is left as it is
            row = {"marginal": marginal, "latent_dim": d, "family": MARGINALS[marginal],
                   "epochs": config.epochs, "run_dir": str(run_dir),
                   **measure(run_dir, s["points"], s["split_points"])}
            if progress:
                print(f"{MARGINAL_NAMES[marginal]}, {d} latents:\n{row['report']}", flush=True)
            rows.append(row)
    matched = []
    for d in s["matched"]:   # N(0, I) trained as long as the VampPrior: a comparison at equal training
        run_dir = out / f"gaussian-d{d}-e{s['vamp_epochs']}"
        config = dataclasses.replace(run_config(scale, "gaussian", d), epochs=s["vamp_epochs"])
        train(config, run_dir, resume=True, progress=progress)
        matched.append({"marginal": "gaussian", "latent_dim": d, "family": MARGINALS["gaussian"],
                        "epochs": config.epochs, "run_dir": str(run_dir),
                        **measure(run_dir, s["points"], s["split_points"])})
        matched += [r for r in rows if r["marginal"] == "vamp" and r["latent_dim"] == d]
    published = s["dataset"] == "binarized-mnist"
    markdown = table(rows, with_published=published)
    (out / "table.md").write_text(markdown + "\n")
    if matched:
        (out / "table-matched.md").write_text(table(matched, with_published=False) + "\n")
    extra = [{**r, "label": f"{MARGINAL_NAMES[r['marginal']]}, {r['epochs']} ep"}
             for r in matched if r["marginal"] == "gaussian"]
    figures = plot_surgery(figure_rows(rows + extra, with_published=published),
                           out / "surgery", title=f"ELBO surgery, {s['dataset']} training set")
    result = {"scale": scale, "rows": [{k: v for k, v in r.items() if k != "report"} for r in rows],
              "matched_rows": [{k: v for k, v in r.items() if k != "report"} for r in matched],
              "published": {str(k): v for k, v in PUBLISHED.items()},
              "table": str(out / "table.md"), "figures": [str(p) for p in figures],
              "wall_seconds": time.monotonic() - started}
    if matched:
        result["matched_table"] = str(out / "table-matched.md")
    write_json(out / "results.json", result)
    print(markdown)
    return result
