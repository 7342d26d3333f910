"""Multi-Rate VAE (Bae et al., ICLR 2023): the whole rate-distortion curve from one run.

On binarized MNIST: one multi-rate run (the family's beta-gated version, log beta ~
U[log 0.01, log 10] per example) against separate beta-VAE runs of the same base architecture
and epochs, one per beta; both are evaluated on the test split at the same betas. Written
under `out`:

    separate/             an ordinary sweep over beta (results.csv, runs/...)
    multi-rate/           the multi-rate run; its results.csv has one row per beta
    multi_rate_dense.json the multi-rate curve at more betas over the whole training range
                          [0.01, 10] (R, D only), for the figure
    comparison.json       per-beta gaps, the area between the curves, the wall-clock ratio
    table.md              the same as a markdown table
    figures/multi_rate_overlay.{png,svg}

Runs that finished are not retrained, so an interrupted reproduction continues.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rdvae.components.multi_rate import DEFAULT_BETA_RANGE
from rdvae.evaluate import evaluate_model
from rdvae.rundir import read_json, write_json, write_text
from rdvae.sweep import ResultsTable, SweepSpec, run_sweep, sweep
from rdvae.sweep.beta_rows import beta_row_key, evaluate_at_betas
from rdvae.train import TrainConfig, load_run, train

from ..common import check_scale, markdown_table

NAME = "multi-rate"
DESCRIPTION = ("Multi-Rate VAE: one beta-conditioned run vs separate beta-VAE runs on binarized MNIST "
               "(curves, area between them, wall-clock ratio)")

BETAS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
SCALES = {
    "smoke": dict(dataset="digits", binarize="dynamic", families=("mlp", "mr-mlp"), epochs=1,
                  latent_dim=4, model={"hidden": [32]}, betas=(0.1, 1.0, 10.0), dense=5, batch_size=64,
                  lr_schedule="constant"),
    "cpu": dict(dataset="binarized-mnist", binarize=None, families=("mlp", "mr-mlp"), epochs=40,
                latent_dim=32, model={"hidden": [512, 256]}, betas=BETAS, dense=25, batch_size=128,
                lr_schedule="cosine"),
    "paper": dict(dataset="binarized-mnist", binarize=None, families=("---", "mr-conv"), epochs=200,
                  latent_dim=64, model={}, betas=BETAS, dense=41, batch_size=128,
                  lr_schedule="cosine"),
}
BETA_RANGE = DEFAULT_BETA_RANGE   # the multi-rate training range (the paper's a, b)
SEED = 0


def _configs(s: dict) -> tuple[dict, TrainConfig]:
    plain, gated = s["families"]
    base = {"dataset": s["dataset"], "binarize": s["binarize"], "latent_dim": s["latent_dim"],
            "model": s["model"], "epochs": s["epochs"], "batch_size": s["batch_size"],
            "lr_schedule": s["lr_schedule"], "seed": SEED}
    multi_rate = TrainConfig(**{**base, "family": gated, "multi_rate": True,
                                "beta_min": BETA_RANGE[0], "beta_max": BETA_RANGE[1]}).validated()
    return {**base, "family": plain}, multi_rate


def table_markdown(comparison: dict, wall: dict) -> str:
    """Per beta, both curves and their gaps; then the area between the curves and the wall clocks."""
    rows = []
    for g in comparison["per_beta"]:
        eq = g["distortion_gap_at_equal_rate"]
        rows.append([f"{g['beta']:g}", f"{g['rate_separate']:.2f}", f"{g['distortion_separate']:.2f}",
                     f"{g['rate_multi_rate']:.2f}", f"{g['distortion_multi_rate']:.2f}",
                     f"{g['objective_gap']:+.2f}", f"{g['neg_elbo_gap']:+.2f}",
                     "" if eq is None else f"{eq:+.2f}"])
    lines = [markdown_table(["β", "R sep", "D sep", "R MR", "D MR", "Δ(D+βR)", "Δ(−ELBO)", "ΔD at equal R"],
                            rows)]
    a = comparison["area"]
    lines += ["", f"Area between the curves over R in [{a['rate_low']:.2f}, {a['rate_high']:.2f}] nats: "
                  f"{a['area']:.2f} nats² (mean |ΔD| {a['mean_gap']:.2f} nats, max {a['max_gap']:.2f}).",
              f"Max |Δ(D+βR)| over β: {comparison['max_abs_objective_gap']:.2f} nats; max |ΔD at equal R|: "
              f"{comparison['max_abs_distortion_gap_at_equal_rate']:.2f} nats.",
              f"Training wall clock: multi-rate {wall['multi_rate_seconds']:.0f} s; separate runs "
              f"{wall['separate_mean_seconds']:.0f} s each on average, "
              f"{wall['separate_total_seconds']:.0f} s for all {wall['separate_runs']}; "
              f"ratio to one beta run {wall['ratio_to_one_run']:.3f}, "
              f"to the sweep {wall['ratio_to_sweep']:.3f}."]
    return "\n".join(lines) + "\n"


def run(scale: str, out: Path, progress: bool = True) -> dict:
    from rdvae.plots.multi_rate import compare_curves, plot_multi_rate_overlay
    from rdvae.plots.style import save_figure

    s = SCALES[check_scale(scale)]
    out = Path(out)
    base, mr_config = _configs(s)

    report = run_sweep(out / "separate", SweepSpec(base=base, points=sweep("beta", list(s["betas"]))),
                       workers=1, progress=progress)
    sweep_rows = [r for r in report.rows if r.get("status") == "done"]
    if len(sweep_rows) < len(s["betas"]):
        failed = [r["run_dir"] for r in report.rows if r.get("status") != "done"]
        raise RuntimeError(f"separate beta runs failed: {failed}; see {out / 'separate' / 'results.csv'}")

    mr_dir = out / "multi-rate"
    mr_summary = train(mr_config, mr_dir, resume=True, progress=progress)
    trained = load_run(mr_dir, device="cpu")
    x = trained.dataset.split(mr_config.final_split)
    stored = ResultsTable(mr_dir).by_run()   # evaluations are deterministic: reuse finished ones
    mr_rows = [stored.get(beta_row_key(b)) for b in s["betas"]]
    if not all(r is not None and r.get("status") == "done" and r.get("examples") == len(x) for r in mr_rows):
        mr_rows = evaluate_at_betas(trained, x, list(s["betas"]), mr_config.final_split, seed=SEED,
                                    progress=progress)
    dense_path = out / "multi_rate_dense.json"
    dense_betas = np.geomspace(*BETA_RANGE, s["dense"]).tolist()   # the whole training range
    dense = read_json(dense_path) if dense_path.exists() else None
    if dense is None or [r["beta"] for r in dense] != dense_betas:
        dense = [evaluate_model(trained.model, x, seed=SEED, diagnostics=False, beta=b) for b in dense_betas]
        write_json(dense_path, dense)

    comparison = compare_curves(mr_rows, sweep_rows, beta_range=(min(s["betas"]), max(s["betas"])))
    separate_seconds = [float(r["train_seconds"]) for r in sweep_rows]
    wall = {"multi_rate_seconds": float(mr_summary["train_seconds"]),
            "separate_mean_seconds": float(np.mean(separate_seconds)),
            "separate_total_seconds": float(np.sum(separate_seconds)), "separate_runs": len(sweep_rows)}
    wall["ratio_to_one_run"] = wall["multi_rate_seconds"] / wall["separate_mean_seconds"]
    wall["ratio_to_sweep"] = wall["multi_rate_seconds"] / wall["separate_total_seconds"]
    result = {"scale": scale, "dataset": s["dataset"], "families": list(s["families"]),
              "epochs": s["epochs"], "betas": list(s["betas"]), "comparison": comparison,
              "wall_clock": wall, "multi_rate_params": mr_summary["params"],
              "separate_params": sweep_rows[0]["params"]}
    write_json(out / "comparison.json", result)
    write_text(out / "table.md", table_markdown(comparison, wall))
    title = (f"{s['dataset']}, test split: {s['families'][1]} (one run) vs "
             f"{s['families'][0]} (one run per β), {s['epochs']} epochs")
    files = save_figure(plot_multi_rate_overlay(mr_rows, sweep_rows, title, dense_rows=dense),
                        out / "figures" / "multi_rate_overlay")
    result["files"] = [str(f) for f in files]
    return result
