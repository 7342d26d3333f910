"""Calibrated Gaussian decoders (Lin et al. 2019; Rybkin et al. 2021, "sigma-VAE") against the
baselines Lin et al. compare with: VAE, beta-VAE, DIP-VAE and WAE.

On grey-level MNIST and Fashion-MNIST, one MLP VAE per decoder / objective: Gaussian with sigma = 1
(the "MSE VAE"), the same with a few betas (beta-VAE), DIP-VAE I and II and WAE-MMD on that decoder,
one learned shared sigma, the closed-form optimal sigma (sigma^2 = MSE), a per-pixel variance
network after a warm-up with the optimal global variance (Lin et al.) and from the start
(sigma-VAE's per-pixel model), and Bernoulli on dynamically binarized data. For each: R, D, ELBO
on the test split, the effective beta 2 beta sigma^2, the model's optimal sigma (sqrt of its test
MSE; a learned sigma has converged when it is within 5 % of it), and FID (rdvae's classifier
features, 10 000 samples at cpu scale) of decoder means for z from the marginal and from a
full-covariance Gaussian mixture fitted to the posterior means of the training data. Sample grids
show the two samplers side by side; `ordering_claims` checks the published orderings.

Scales:

    smoke  sklearn digits, tiny MLP, 2 epochs at most (plateau schedule); seconds, for tests
    cpu    MNIST and Fashion-MNIST, MLP 784-512-256 (gated), d = 16, batch 128, Adam 1e-3 constant
           until the validation objective improves by less than 0.5 nats over 4 epochs (or 4 epochs
           before the 40-epoch cap), then linear to 0 over 4 epochs; per-pixel warm-up 10 epochs
    paper  the same models for 50 epochs at a constant learning rate

The runs are an ordinary sweep (out/<dataset>/), so an interrupted reproduction continues;
`workers` trains that many runs side by side.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from rdvae.components import effective_beta, reconstruction_rmse
from rdvae.data import load_dataset
from rdvae.device import seeded
from rdvae.fid import feature_classifier, frechet_distance_of_images, image_statistics
from rdvae.rundir import RunDir, write_json, write_text
from rdvae.sweep import SweepSpec, run_sweep
from rdvae.train import load_run

from ..common import check_scale, claims_table, records_table
from .claims import ordering_claims

NAME = "sigma-vae"
DESCRIPTION = ("calibrated Gaussian decoders (learned, optimal, per-pixel sigma) vs sigma = 1, beta-VAE, "
               "DIP-VAE, WAE and Bernoulli: R, D, ELBO and FID with prior and aggregate-posterior sampling")

# the plateau criterion (rdvae.train: TrainConfig.plateau_epochs, plateau_nats, decay_epochs)
PLATEAU = {"lr_schedule": "plateau", "plateau_epochs": 4, "plateau_nats": 0.5, "decay_epochs": 4}
SCALES = {
    "smoke": dict(datasets=("digits",), epochs=2, hidden=[32], latent_dim=4, betas=(0.1,), fid_samples=200,
                  classifier_epochs=15, components=3, grid=4, warmup_epochs=1,
                  schedule={"lr_schedule": "plateau", "plateau_epochs": 1, "plateau_nats": 0.5,
                            "decay_epochs": 1}),
    "cpu": dict(datasets=("mnist", "fashion-mnist"), epochs=40, hidden=[512, 256], latent_dim=16,
                betas=(0.1, 0.01, 0.001), fid_samples=10_000, classifier_epochs=2, components=10, grid=8,
                warmup_epochs=10, schedule=PLATEAU),
    "paper": dict(datasets=("mnist", "fashion-mnist"), epochs=50, hidden=[512, 256], latent_dim=16,
                  betas=(0.1, 0.01, 0.001), fid_samples=10_000, classifier_epochs=5, components=10, grid=8,
                  warmup_epochs=25, schedule={"lr_schedule": "constant"}),
}
# the baselines' penalties: WAE's lambda = 10 was set against c = ||x - y||^2 (Tolstikhin et al., MNIST);
# with sigma = 1 the distortion is SSE / 2 + const, so the same balance is mmd_weight 5. DIP-VAE:
# lambda_od = 10, lambda_d = 10 lambda_od (I) or lambda_od (II), the paper's ratios.
WAE_OPTIONS = {"mmd_weight": 5.0, "kernel": "imq", "multiscale": True, "encoder": "deterministic"}
DIP_LAMBDA_OD = 10.0
BATCH_SIZE = 128
# a learned or closed-form sigma is calibrated when it is within this fraction of the model's optimal sigma
CALIBRATION_TOLERANCE = 0.05


def model_points(betas, warmup_steps: int) -> tuple[list[str], list[dict]]:
    """Run names and their settings (on top of the base settings)."""
    gauss = {"family": "mlp-gauss", "binarize": None}
    unit = {**gauss, "model.variance": "fixed", "model.sigma": 1.0}
    named = [("gauss-sigma1", {**unit, "beta": 1.0})]
    named += [(f"beta-vae-{b:g}", {**unit, "beta": b}) for b in betas]
    named += [(f"dip-vae-{kind}", {**unit, "beta": 1.0, "objective": "dip-vae",
                                   "objective_options": {"dip_type": kind, "lambda_od": DIP_LAMBDA_OD}})
              for kind in ("i", "ii")]
    named += [("wae", {**unit, "beta": 1.0, "objective": "wae-mmd", "objective_options": dict(WAE_OPTIONS)})]
    named += [
        ("learned-sigma", {**gauss, "model.variance": "learned", "beta": 1.0}),
        ("optimal-sigma", {**gauss, "model.variance": "optimal", "beta": 1.0}),
        ("per-pixel-warmup", {**gauss, "model.variance": "per-dimension", "beta": 1.0,
                              "model.variance_warmup_steps": warmup_steps}),
        ("per-pixel", {**gauss, "model.variance": "per-dimension", "beta": 1.0,
                       "model.variance_warmup_steps": 0}),
        ("bernoulli", {"family": "mlp", "binarize": "dynamic", "beta": 1.0}),
    ]
    return [n for n, _ in named], [p for _, p in named]


def square_tile(images: torch.Tensor) -> np.ndarray:
    """n^2 grey images [N, 1, H, W] in [0, 1] -> one [n(H+g)-g, n(W+g)-g] canvas, white gaps g."""
    side = math.isqrt(len(images))
    x = images[: side * side, 0].float().clamp(0, 1).numpy()
    h, w = x.shape[1:]
    gap = max(1, h // 14)
    canvas = np.ones((side * (h + gap) - gap, side * (w + gap) - gap))
    for k in range(side * side):
        r, c = divmod(k, side)
        canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = x[k]
    return canvas


def sampler_grid(panels: list[tuple[str, dict[str, torch.Tensor]]], title: str, per_row: int = 3):
    """For each model (a sub-figure), its samples under each sampler side by side, each a square
    tile of images."""
    from rdvae.plots.style import new_figure, styled

    samplers = list(panels[0][1])
    rows = math.ceil(len(panels) / per_row)
    with styled():
        fig = new_figure(per_row * len(samplers) * 1.45 + 0.3, rows * 1.75 + 0.4)
        subfigures = np.atleast_2d(fig.subfigures(rows, per_row, wspace=0.04, hspace=0.02))
        for i, sub in enumerate(subfigures.flat):
            if i >= len(panels):
                continue
            label, images = panels[i]
            axes = np.atleast_1d(sub.subplots(1, len(samplers), gridspec_kw={"wspace": 0.04}))
            for ax, name in zip(axes, samplers, strict=True):
                ax.imshow(square_tile(images[name]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                ax.set_axis_off()
                ax.set_title(name, fontsize=7)
            sub.suptitle(label, fontsize=9, fontweight="bold")
        fig.suptitle(title, fontsize=10)
    return fig


def evaluate_samplers(run_dir: Path, net, reference, features: str, settings: dict,
                      seed: int = 0) -> tuple[dict, dict]:
    """Effective beta and FID of decoder means under both samplers, written into the run's
    summary (and reused from it when it holds FIDs of the same features and sample count);
    returns (figures, grid images)."""
    from rdvae.samplers import AggregatePosteriorSampler, MarginalSampler, decode_means

    trained = load_run(run_dir, device="cpu")
    model, config, ds = trained.model, trained.config, trained.dataset
    summary, n = trained.run.read_summary(), settings["fid_samples"]
    cached = summary.get("fid_features") == features and summary.get("fid_samples") == n
    fit_x = ds.train_transform(ds.train, torch.Generator().manual_seed(seed))  # binarized if dynamic
    ap = AggregatePosteriorSampler(settings["components"], "full", source="mean", seed=seed)
    ap.fit(model.encoder, fit_x)
    figures = {"effective_beta": effective_beta(model, ds.test, config.beta), "fid_samples": n,
               "fid_features": features, "optimal_sigma": reconstruction_rmse(model, ds.test)}
    grid_images = {}
    for name, sampler in (("prior", MarginalSampler(model)), ("aggregate posterior (GMM)", ap)):
        key = "fid_prior" if name == "prior" else "fid_aggregate"
        with seeded(seed):
            z = sampler.sample(n)
        if cached:
            figures[key] = summary[key]
            grid_images[name] = decode_means(model, z[: settings["grid"] ** 2]).clamp(0, 1)
            continue
        images = decode_means(model, z).clamp(0, 1)
        figures[key] = frechet_distance_of_images(net, images, reference)
        grid_images[name] = images[: settings["grid"] ** 2]
    if config.family == "mlp-gauss":
        decoder = model.decoder
        figures["variance"] = config.model.get("variance")
        if decoder.variance != "per-dimension":
            with torch.no_grad():
                figures["sigma"] = decoder.global_log_scale().exp().item()
            figures["sigma_ratio"] = figures["sigma"] / figures["optimal_sigma"]
            figures["calibrated"] = abs(figures["sigma_ratio"] - 1) <= CALIBRATION_TOLERANCE
    trained.run.update_summary(**figures)
    return figures, grid_images


TABLE_COLUMNS = ("model", "beta", "rate", "distortion", "elbo", "sigma", "optimal_sigma", "effective_beta",
                 "fid_prior", "fid_aggregate", "active_units", "epochs", "converged", "train_seconds")


def markdown_table(rows: list[dict]) -> str:
    """One line per run: R, D, ELBO, sigma against the optimal sigma, effective beta and both FIDs."""
    return records_table(rows, TABLE_COLUMNS, number="{:.4g}")


def run_dataset(dataset: str, settings: dict, out: Path, progress: bool = True, workers: int = 1) -> dict:
    """Train (or continue) the sweep of one dataset in out/<dataset>, then score every run."""
    from rdvae.plots.style import save_figure

    ds = load_dataset(dataset)
    steps_per_epoch = math.ceil(len(ds.train) / BATCH_SIZE)
    warmup_steps = steps_per_epoch * settings["warmup_epochs"]
    names, points = model_points(settings["betas"], warmup_steps=warmup_steps)
    base = {"dataset": dataset, "epochs": settings["epochs"], "latent_dim": settings["latent_dim"],
            "model.hidden": settings["hidden"], "batch_size": BATCH_SIZE, "seed": 0, **settings["schedule"]}
    sweep_dir = Path(out) / dataset
    report = run_sweep(sweep_dir, SweepSpec(base=base, points=points, names=names), workers=workers,
                       progress=progress)
    net, classifier = feature_classifier(dataset, epochs=settings["classifier_epochs"], progress=progress)
    reference = image_statistics(net, ds.test)
    features = f"{dataset} classifier {classifier['architecture']} ({classifier['epochs']} epochs)"
    rows, panels = [], []
    for name, row in zip(names, report.rows, strict=True):
        if row["status"] != "done":
            rows.append({"model": name, "status": row["status"], "error": row.get("error")})
            continue
        run_dir = sweep_dir / row["run_dir"]
        figures, grid_images = evaluate_samplers(run_dir, net, reference, features, settings)
        summary = RunDir(run_dir).read_summary()
        trained = summary.get("epochs_trained") or summary.get("epochs")
        rows.append({"model": name, **{k: row.get(k) for k in ("beta", "rate", "distortion", "elbo",
                                                               "active_units", "train_seconds")},
                     **figures, "epochs": f"{trained}/{settings['epochs']}",
                     "converged": "yes" if summary.get("converged") else "no (cap)",
                     "plateau_gain": summary.get("plateau_gain"), "status": "done"})
        panels.append((name, grid_images))
    if panels:
        title = f"{dataset}: decoder means, z from the prior vs the aggregate posterior"
        save_figure(sampler_grid(panels, title), sweep_dir / "samples", formats=("png",))
    claims = ordering_claims(dataset, rows)
    write_text(sweep_dir / "results.md", markdown_table(rows) + "\n\n" + claims_table(claims) + "\n")
    return {"rows": rows, "claims": claims, "classifier": classifier, "fid_samples": settings["fid_samples"],
            "warmup_steps": warmup_steps, "steps_per_epoch": steps_per_epoch,
            "reference": f"{dataset} test split ({len(ds.test)} images)"}


def run(scale: str, out: Path, progress: bool = True, workers: int = 1) -> dict:
    """Every dataset of the scale; `workers` runs train side by side (threads split between them)."""
    settings = SCALES[check_scale(scale)]
    out = Path(out)
    started = time.monotonic()
    results = {"scale": scale, "settings": settings, "datasets": {}}
    for dataset in settings["datasets"]:
        results["datasets"][dataset] = run_dataset(dataset, settings, out, progress, workers)
    results["wall_seconds"] = time.monotonic() - started
    write_json(out / "results.json", results)
    return results
