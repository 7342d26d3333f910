"""A GAN generator as a Gaussian decoder: the approximation error of a factorised Gaussian encoder
([Re] "VAE approximation error", ReScience 2023, section 4; Shekhovtsov, Schlesinger, Flach, ICLR 2022).

Per dataset, three run directories under out/<dataset>/:

    gan/              a DCGAN (adversarial, beside this module), with the mode-collapse guard: the checkpoint
                      one epoch before the FID of its samples gets worse. Its generator g0 is the
                      ground-truth decoder d0(x|z) = N(x; g0(z), sigma^2 I), z ~ N(0, I).
    stage1-encoder/   the encoder (the discriminator's conv stack, Gaussian head) trained alone by
                      conditional likelihood on pairs z ~ N(0, I), x ~ d0(x|z) (objective
                      conditional-likelihood; the decoder frozen).
    stage2-joint/     encoder and decoder trained jointly on the ELBO of the data (objective beta,
                      beta = 1), starting from stage 1.

Both stages are ordinary rdvae runs (family `dcgan`): R, D and ELBO per example in nats on the
data's test split, `rdvae eval` works on them. After each stage, on n ground-truth pairs
(z ~ N(0, I), g0(z), x = g0(z) + sigma noise), with the stage's encoder mean mu(x) and decoder g:

    fid_ground_truth   FID(g0(z), g(mu(x))): ground truth against re-decoded images
    rmse_ground_truth  the root mean squared difference of g(mu(x)) and g0(z), image by image (FID
                       compares two sets; this says whether each re-decoding is its own ground truth)
    fid_samples        FID(g(z'), test images), z' ~ N(0, I): the model's samples against the data
    fid_reconstructions FID(g(mu(x_test)), test images)
    elbo_ground_truth  the ELBO of the ground-truth data x (nats, mean over the n pairs)

The paper's claim, checked: the ELBO (of the data) goes up from stage 1 to stage 2 while the FID
between ground truth and re-decoded images gets worse: training the decoder by the ELBO damages it
to fit a factorised Gaussian posterior.

Scales:

    smoke  sklearn digits padded to 16 x 16, tiny networks, 1-2 epochs; seconds, for tests
    cpu    MNIST and Fashion-MNIST padded to 32 x 32 (grey), DCGAN with ngf = ndf = 32, latent 100,
           GAN up to 10 epochs (guard), 8 epochs per stage (3128 steps of 128), FID on 10 000 pairs
    paper  an image folder given by --dataset (CelebA: resized to 64 x 64, colour kept), the
           tutorial's ngf = ndf = 64, GAN up to 100 epochs, 1e6 iterations per stage, FID on 2e5
           pairs; with --inception a TorchScript Inception network (otherwise the classifier
           features, which need labelled data)

--dataset replaces the scale's datasets at any scale: a data path is resized to the scale's side
(16, 32, 64), a registered dataset gets the scale's padding.

sigma = 0.025 in rdvae's [0, 1] units is the paper's 0.05 on the generator's [-1, 1] scale.
"""

from __future__ import annotations

import copy
import math
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch

from rdvae.data import load_dataset
from rdvae.data.registry import is_path
from rdvae.device import seeded, set_threads
from rdvae.errors import ConfigError
from rdvae.evaluate import evaluate_model
from rdvae.fid import frechet_distance_of_images, image_statistics
from rdvae.presets import build_model
from rdvae.rundir import write_json, write_text
from rdvae.train import TrainConfig, load_run, train

from ..common import check_scale, claim, claims_table, records_table
from .adversarial import GANConfig, fid_features, load_gan, train_gan
from .dcgan import PAPER_SIGMA

NAME = "gan-decoder"
DESCRIPTION = ("a DCGAN generator as a Gaussian decoder: encoder by conditional likelihood, then joint "
               "ELBO training; does the ELBO go up while FID(ground truth, re-decoded) gets worse? "
               "([Re] sec. 4)")

SCALES = {
    "smoke": dict(datasets=("digits",), data={"pad": 4}, side=16, latent_dim=16, ngf=8, ndf=8, gan_epochs=2,
                  stage_epochs=1, stage_iterations=None, batch_size=64, fid_samples=200, gan_fid_samples=200,
                  classifier_epochs=5, panel=6),
    "cpu": dict(datasets=("mnist", "fashion-mnist"), data={"pad": 2}, side=32, latent_dim=100, ngf=32, ndf=32,
                gan_epochs=10, stage_epochs=8, stage_iterations=None, batch_size=128, fid_samples=10_000,
                gan_fid_samples=2000, classifier_epochs=2, panel=10),
    "paper": dict(datasets=(), data={}, side=64, latent_dim=100, ngf=64, ndf=64,
                  gan_epochs=100, stage_epochs=None, stage_iterations=1_000_000, batch_size=128,
                  fid_samples=200_000, gan_fid_samples=10_000, classifier_epochs=2, panel=10),
}
SIGMA = PAPER_SIGMA
LR = 2e-4
# [Re] table 1 (CelebA 64 x 64, Inception FID between 2e5 ground-truth images and their re-decodings)
PAPER = {"stage1-encoder": {"elbo": -19072.746, "fid_ground_truth": 1.311},
         "stage2-joint": {"elbo": 5137.171, "fid_ground_truth": 71.852}}
STAGES = ("stage1-encoder", "stage2-joint")


def stage_config(dataset: str, data: dict, settings: dict, objective: str, epochs: int) -> TrainConfig:
    model = {"ngf": settings["ngf"], "ndf": settings["ndf"], "sigma": SIGMA}
    return TrainConfig(dataset=dataset, data=dict(data), binarize=None, family="dcgan",
                       latent_dim=settings["latent_dim"], model=model, objective=objective, epochs=epochs,
                       batch_size=settings["batch_size"], lr=LR, seed=0)


def data_options(dataset: str, settings: dict) -> dict:
    """The loader options of a dataset at a scale: a data path (a folder of images, e.g. CelebA) is
    resized to the scale's side; a registered dataset gets the scale's options (padding MNIST's 28 to 32)."""
    if is_path(dataset):
        return {"resize": [settings["side"], settings["side"]]}
    return dict(settings["data"])


def stage_epochs(settings: dict, train_size: int) -> int:
    """The epochs of each stage: as given, or enough for `stage_iterations` updates."""
    if settings["stage_epochs"] is not None:
        return settings["stage_epochs"]
    steps = math.ceil(train_size / settings["batch_size"])
    return math.ceil(settings["stage_iterations"] / steps)


def ground_truth_model(gan, settings: dict, event_shape):
    """The family-`dcgan` VAE whose decoder is the GAN's generator (the encoder freshly initialised)."""
    torch.manual_seed(0)
    model = build_model("dcgan", event_shape, settings["latent_dim"], ngf=settings["ngf"],
                        ndf=settings["ndf"], sigma=SIGMA)
    model.decoder.trunk.load_state_dict(gan.generator.state_dict())
    return model


@torch.no_grad()
def ground_truth_pairs(model, n: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(g0(z), x = g0(z) + sigma noise) for n draws z ~ m(z), the ground-truth decoder in eval mode."""
    from rdvae.samplers import decode_means

    model.eval()
    with seeded(seed):
        z = model.marginal_distribution().sample((n,))
        clean = decode_means(model, z)
        noisy = clean + SIGMA * torch.randn_like(clean)
    return clean, noisy


@torch.no_grad()
def redecode(model, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """g(mu(x)): the decoder mean at the encoder mean, in eval mode."""
    from rdvae.samplers import decode_means

    model.eval()
    device = next(model.parameters()).device
    means = torch.cat([model.encoder(x[s:s + batch_size].to(device)).mean.cpu()
                       for s in range(0, len(x), batch_size)])
    return decode_means(model, means)


def stage_figures(model, clean, noisy, test, features, gt_reference, data_reference) -> dict:
    """The scores of one stage (see the module docstring); the references are the feature statistics of
    the ground-truth images g0(z) and of the test images."""
    from rdvae.samplers import decode_means

    with seeded(2):
        samples = decode_means(model, model.marginal_distribution().sample((len(clean),)))
    ground_truth = evaluate_model(model, noisy, diagnostics=False)
    fid = frechet_distance_of_images
    redecoded = redecode(model, noisy)
    return {"fid_ground_truth": fid(features, redecoded, gt_reference),
            "rmse_ground_truth": (redecoded - clean).square().mean().sqrt().item(),
            "fid_samples": fid(features, samples, data_reference),
            "fid_reconstructions": fid(features, redecode(model, test), data_reference),
            "elbo_ground_truth": ground_truth["elbo"], "rate_ground_truth": ground_truth["rate"],
            "distortion_ground_truth": ground_truth["distortion"]}


def run_dataset(dataset: str, settings: dict, out: Path, progress: bool = True,
                inception: str | None = None) -> dict:
    """Train (or continue) the GAN and both stages of one dataset in out/<dataset>, then score them."""
    from rdvae.plots import image_columns, save_figure
    from rdvae.samplers import decode_means

    started = time.monotonic()
    folder = Path(out) / _folder_name(dataset)
    data = data_options(dataset, settings)
    ds = load_dataset(dataset, **data)
    gan_config = GANConfig(dataset=dataset, data=data, latent_dim=settings["latent_dim"],
                           ngf=settings["ngf"], ndf=settings["ndf"], epochs=settings["gan_epochs"],
                           batch_size=settings["batch_size"], fid_samples=settings["gan_fid_samples"],
                           classifier_epochs=settings["classifier_epochs"], inception=inception, seed=0)
    gan_summary = train_gan(gan_config, folder / "gan", resume=True, progress=progress)
    gan, _ = load_gan(folder / "gan")
    truth = ground_truth_model(gan, settings, ds.event_shape)
    epochs = stage_epochs(settings, len(ds.train))
    summaries = {}
    for stage, objective, start in (("stage1-encoder", "conditional-likelihood", copy.deepcopy(truth)),
                                    ("stage2-joint", "beta", None)):
        if start is None:
            start = load_run(folder / "stage1-encoder", device="cpu").model
        summaries[stage] = train(stage_config(dataset, data, settings, objective, epochs), folder / stage,
                                 resume=True, progress=progress, model=start)
    features, feature_info = fid_features(gan_config, progress)
    n = settings["fid_samples"]
    clean, noisy = ground_truth_pairs(truth, n)
    data_reference, gt_reference = image_statistics(features, ds.test), image_statistics(features, clean)
    with seeded(3):
        gan_samples = decode_means(truth, truth.marginal_distribution().sample((n,)))
    rows = [{"stage": "ground truth (GAN)", "fid_samples": frechet_distance_of_images(features, gan_samples,
                                                                                       data_reference),
             "gan_epochs": gan_summary["epochs_trained"], "selected_epoch": gan_summary["selected_epoch"]}]
    models = {}
    for stage in STAGES:
        trained = load_run(folder / stage, device="cpu")
        models[stage] = trained.model
        summary = summaries[stage]
        rows.append({"stage": stage, "rate": summary["rate"], "distortion": summary["distortion"],
                     "elbo": summary["elbo"], "epochs": summary["epochs_trained"],
                     "train_seconds": summary["train_seconds"],
                     **stage_figures(trained.model, clean, noisy, ds.test, features, gt_reference,
                                     data_reference)})
    k = settings["panel"]
    panel = image_columns([("ground truth g0(z)", clean[:k]), ("x = g0(z) + noise", noisy[:k].clamp(0, 1)),
                           ("re-decoded, stage 1", redecode(models["stage1-encoder"], noisy[:k])),
                           ("re-decoded, stage 2", redecode(models["stage2-joint"], noisy[:k]))],
                          f"{dataset}: ground truth and its re-decodings g(mu(x))")
    save_figure(panel, folder / "redecoded", formats=("png",))
    claims = direction_claims(rows)
    write_text(folder / "results.md",
               markdown_table(rows) + "\n\n" + claims_table(claims, paper="paper (CelebA)") + "\n")
    return {"rows": rows, "claims": claims, "gan": gan_summary, "fid_pairs": n, **feature_info,
            "test_images": len(ds.test), "wall_seconds": time.monotonic() - started}


def _folder_name(dataset: str) -> str:
    return Path(dataset).name if ("/" in dataset or "\\" in dataset) else dataset


def direction_claims(rows: list[dict]) -> list[dict]:
    """The paper's two directions from stage 1 to stage 2 (ELBO up, FID(ground truth, re-decoded) up) and
    one it does not measure: the decoder as a generator, FID(samples from the prior, data), up."""
    by = {r["stage"]: r for r in rows}
    one, two = by.get("stage1-encoder"), by.get("stage2-joint")
    claims = []
    for key, label in (("elbo", "ELBO improves with joint training"),
                       ("fid_ground_truth", "FID(ground truth, re-decoded) gets worse"),
                       ("fid_samples", "FID(prior samples, data) gets worse (not measured in the paper)")):
        if one is None or two is None:
            claims.append(claim(label, "", "run missing", None))
            continue
        a, b = one[key], two[key]
        paper = (f"{PAPER['stage1-encoder'][key]:g} -> {PAPER['stage2-joint'][key]:g}"
                 if key in PAPER["stage1-encoder"] else "-")
        claims.append(claim(label, paper, f"{a:.1f} -> {b:.1f}", b > a))
    return claims


TABLE_COLUMNS = ("stage", "rate", "distortion", "elbo", "fid_ground_truth", "rmse_ground_truth",
                 "fid_samples", "fid_reconstructions", "elbo_ground_truth", "epochs", "train_seconds")


def markdown_table(rows: list[dict]) -> str:
    """One line per stage (and the GAN): R, D, ELBO and the FIDs."""
    return records_table(rows, TABLE_COLUMNS, number="{:.2f}")


def _run_one(dataset, settings, out, progress, inception, threads):
    set_threads(threads)
    return run_dataset(dataset, settings, out, progress, inception)


def run(scale: str, out: Path, progress: bool = True, workers: int = 1, dataset: str | None = None,
        inception: str | None = None) -> dict:
    """Every dataset of the scale (or `dataset` alone), `workers` datasets side by side (one process
    each, the free cores split between them); a dataset that fails is reported and the others go on."""
    settings = SCALES[check_scale(scale)]
    datasets = (dataset,) if dataset else settings["datasets"]
    if not datasets:
        raise ConfigError("the paper scale trains on CelebA 64 x 64: pass the image folder with --dataset "
                         "PATH (e.g. img_align_celeba/), and an Inception TorchScript file with --inception")
    out = Path(out)
    started = time.monotonic()
    results = {"scale": scale, "settings": settings, "datasets": {}}
    if workers > 1 and len(datasets) > 1:
        from rdvae.device import free_cores

        threads = max(1, free_cores() // workers)
        with ProcessPoolExecutor(min(workers, len(datasets)), mp_context=get_context("spawn")) as pool:
            futures = {name: pool.submit(_run_one, name, settings, out, False, inception, threads)
                       for name in datasets}
            for name, future in futures.items():
                results["datasets"][name] = _outcome(future.result)
    else:
        for name in datasets:
            results["datasets"][name] = _outcome(lambda name=name: run_dataset(name, settings, out, progress,
                                                                                inception))
    results["wall_seconds"] = time.monotonic() - started
    write_json(out / "results.json", results)
    return results


def _outcome(call) -> dict:
    try:
        return {"status": "done", **call()}
    except Exception as err:  # noqa: BLE001 - one dataset's failure is reported, the others go on
        return {"status": "failed", "error": f"{type(err).__name__}: {' '.join(str(err).split())}"}
