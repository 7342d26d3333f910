"""A GAN generator as the ground-truth decoder: the approximation error of a factorised Gaussian encoder
([Re] "VAE approximation error", ReScience 2023, section 4; Shekhovtsov, Schlesinger, Flach, ICLR 2022).

The question ([Re] table 1): when the true generative process is p*(z, x) = N(z; 0, I) N(x; g0(z),
sigma^2 I) for a GAN generator g0, does ELBO training of encoder and decoder improve the ELBO by moving
the decoder away from the truth, visible as FID(ground truth, re-decoded) rising? As in the [Re] code,
real images train g0 only; both stages train on fresh draws of p*, and every score is taken on
held-out draws of it.

Per dataset, under out/<dataset>/, the named stages (each resumable, each its own `--stage`):

    gan               stage 0: a DCGAN on the real training images (adversarial), with the mode-collapse
                      guard (the epoch before the FID of its samples gets worse). Its generator is g0.
    stage1-encoder    the encoder alone by conditional likelihood -log e(z|x) on fresh pairs
                      (z, x) ~ p*, the decoder g0 frozen (stages), until its held-out conditional
                      likelihood plateaus (its own convergence criterion) or the cap
    stage2-joint      encoder and decoder jointly by the ELBO of fresh draws x ~ p*, from stage 1, until
                      the held-out ELBO plateaus or the cap
    report            no training: the table, claims and panel from the stages finished so far

After each of stages 1 and 2, its scores (scores-<stage>.json beside the runs):

    elbo, rate, distortion, conditional_nll   on `elbo_draws` held-out draws of p* (fixed seed), with
                                              standard errors (stages.held_out_figures)
    fid_redecoded, fid_re_sample, fid_noise_floor, fid_prior, rmse_redecoded
                                              on `fid_draws` draws, `fid_resamples` times with fresh
                                              seeds: means and standard errors (fids)

The claims (stage 1 -> stage 2): the ELBO goes up; FID(ground truth, re-decoded) goes up, and so does
the [Re] script's FID of noisy re-decodings; the latter ends above the noise floor
FID(g0(z), g0(z) + sigma noise) (so that its rise is more than the added noise); and, not in the
paper, the decoder as a generator gets worse. A change within two standard errors, or a stage 1 that
did not converge by its criterion (for the FID claims), is "cannot tell".

Scales:

    smoke  sklearn digits padded to 16 x 16, tiny networks, a few steps per stage; seconds, for tests
    cpu    MNIST and Fashion-MNIST padded to 32 x 32 (grey), DCGAN with ngf = ndf = 32, latent 100, GAN up
           to 10 epochs (guard), stage 1 at most 40 000 and stage 2 at most 20 000 steps of 128 draws
           (epochs of 500 steps; converged when the held-out criterion gains less than 0.25 nat (stage 1)
           or 5 nats (stage 2) over 4 epochs), FIDs on 10 000 draws x 5 resamples, ELBO on 10 000 draws
    paper  an image folder given by --dataset (CelebA: resized to 64 x 64, colour kept), the tutorial's
           ngf = ndf = 64, GAN up to 100 epochs, stages of at most 1e6 steps (the paper's 1e6 iterations;
           epochs of 5000 steps), FIDs on the paper's 2e5 draws x 3 resamples; with --inception a
           TorchScript Inception network (otherwise the classifier features, which need labelled data)

--dataset replaces the scale's datasets at any scale: a data path is resized to the scale's side
(16, 32, 64), a registered dataset gets the scale's padding.

sigma = 0.025 in rdvae's [0, 1] units is the paper's 0.05 on the generator's [-1, 1] scale (an ELBO in
[0, 1] units is D log 2 nats above the same model's in [-1, 1] units, D the pixels x channels).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch

from rdvae.data.registry import is_path
from rdvae.device import resolve_device, seeded, set_threads
from rdvae.errors import ConfigError
from rdvae.rundir import RunDir, read_json, write_json, write_text

from ..common import check_scale, claim, claims_table, records_table
from .adversarial import GANConfig, fid_features, load_gan, train_gan
from .dcgan import PAPER_SIGMA
from .fids import image_sets, stage_fids
from .ground_truth import GroundTruth, stage_model
from .stages import STAGES, StageConfig, held_out_figures, load_stage, train_stage

NAME = "gan-decoder"
DESCRIPTION = ("a DCGAN generator as the ground-truth decoder: encoder by conditional likelihood, then joint "
               "ELBO training, both on draws of the ground truth; does the ELBO go up while FID(ground "
               "truth, re-decoded) gets worse? ([Re] sec. 4)")

# the stages as `--stage` names them, in the order a full run goes through them
STAGE_NAMES = ("gan", *STAGES, "report")
SCALES = {
    "smoke": dict(datasets=("digits",), data={"pad": 4}, side=16, latent_dim=16, ngf=8, ndf=8, gan_epochs=2,
                  batch_size=64, gan_fid_samples=200, classifier_epochs=5,
                  stage_steps={"stage1-encoder": 20, "stage2-joint": 20}, epoch_steps=10, plateau_epochs=1,
                  plateau_nats={"stage1-encoder": 1.0, "stage2-joint": 5.0}, validation_samples=128,
                  elbo_draws=256, fid_draws=200, fid_resamples=2, panel=6),
    "cpu": dict(datasets=("mnist", "fashion-mnist"), data={"pad": 2}, side=32, latent_dim=100, ngf=32, ndf=32,
                gan_epochs=10, batch_size=128, gan_fid_samples=2000, classifier_epochs=2,
                stage_steps={"stage1-encoder": 40_000, "stage2-joint": 20_000}, epoch_steps=500,
                plateau_epochs=4,
                plateau_nats={"stage1-encoder": 0.25, "stage2-joint": 5.0}, validation_samples=2000,
                elbo_draws=10_000, fid_draws=10_000, fid_resamples=5, panel=10),
    "paper": dict(datasets=(), data={}, side=64, latent_dim=100, ngf=64, ndf=64, gan_epochs=100,
                  batch_size=128, gan_fid_samples=10_000, classifier_epochs=2,
                  stage_steps={"stage1-encoder": 1_000_000, "stage2-joint": 1_000_000}, epoch_steps=5000,
                  plateau_epochs=4,
                  plateau_nats={"stage1-encoder": 1.0, "stage2-joint": 5.0}, validation_samples=2000,
                  elbo_draws=10_000, fid_draws=200_000, fid_resamples=3, panel=10),
}
SIGMA = PAPER_SIGMA
LR = 2e-4
# seeds of the held-out draws: the stages' validation, the ELBO of the scores, the FIDs' first resample
# (the others follow it), the panel
VALIDATION_SEED, ELBO_SEED, FID_SEED, PANEL_SEED = 1, 2, 100, 3
# [Re] table 1 (CelebA 64 x 64, Inception FID between 2e5 ground-truth images and their re-decodings;
# the ELBO in the generator's [-1, 1] units)
PAPER = {"stage1-encoder": {"elbo": -19072.746, "fid": 1.311},
         "stage2-joint": {"elbo": 5137.171, "fid": 71.852}}
GAN_ROW = "ground truth g0 (GAN)"


def data_options(dataset: str, settings: dict) -> dict:
    """The loader options of a dataset at a scale: a data path (a folder of images, e.g. CelebA) is
    resized to the scale's side; a registered dataset gets the scale's options (padding MNIST's 28 to 32)."""
    if is_path(dataset):
        return {"resize": [settings["side"], settings["side"]]}
    return dict(settings["data"])


def gan_config(dataset: str, settings: dict, inception: str | None) -> GANConfig:
    """Stage 0's config: the DCGAN of a dataset at a scale."""
    return GANConfig(dataset=dataset, data=data_options(dataset, settings), latent_dim=settings["latent_dim"],
                     ngf=settings["ngf"], ndf=settings["ndf"], epochs=settings["gan_epochs"],
                     batch_size=settings["batch_size"], fid_samples=settings["gan_fid_samples"],
                     classifier_epochs=settings["classifier_epochs"], inception=inception, seed=0)


def stage_config(stage: str, truth: GroundTruth, settings: dict) -> StageConfig:
    """The config of stage 1 or 2 at a scale."""
    return StageConfig(
        stage=stage, event_shape=list(truth.event_shape), latent_dim=truth.latent_dim, ngf=settings["ngf"],
        ndf=settings["ndf"], sigma=truth.sigma, max_steps=settings["stage_steps"][stage],
        epoch_steps=settings["epoch_steps"], batch_size=settings["batch_size"], lr=LR,
        validation_samples=settings["validation_samples"], validation_seed=VALIDATION_SEED,
        plateau_epochs=settings["plateau_epochs"], plateau_nats=settings["plateau_nats"][stage],
        seed=0).validated()


def _folder_name(dataset: str) -> str:
    return Path(dataset).name if ("/" in dataset or "\\" in dataset) else dataset


def _done(path: Path) -> bool:
    run = RunDir(path)
    return run.exists and run.read_summary().get("status") == "done"


def check_ready(folder: Path, stage: str) -> None:
    """A ConfigError naming the command to run first, unless the stages before `stage` are finished."""
    needs = {"stage1-encoder": "gan", "stage2-joint": "stage1-encoder"}.get(stage)
    if needs is not None and not _done(folder / needs):
        raise ConfigError(f"--stage {stage} needs the finished {needs} run in {folder / needs}: run `rdvae "
                          f"repro gan-decoder --stage {needs}` (same --scale, --out and --dataset) first")


def ground_truth(folder: Path, device: torch.device) -> GroundTruth:
    """p* of a dataset's folder: the GAN's selected generator g0 with noise sigma."""
    gan, _ = load_gan(folder / "gan")
    return GroundTruth(gan.generator, SIGMA).to(device)


def scoring(settings: dict, features_info: dict) -> dict:
    """What a stage's scores depend on besides its weights (a scores file with other settings is redone)."""
    return {"elbo_draws": settings["elbo_draws"], "elbo_seed": ELBO_SEED, "fid_draws": settings["fid_draws"],
            "fid_resamples": settings["fid_resamples"], "fid_seed": FID_SEED,
            "features": features_info.get("features")}


def score_stage(folder: Path, stage: str, truth: GroundTruth, settings: dict, features, features_info: dict,
                device: torch.device) -> dict:
    """The scores of a finished stage (module docstring), written to scores-<stage>.json; an up-to-date
    file is read instead."""
    path = folder / f"scores-{stage}.json"
    summary = RunDir(folder / stage).read_summary()
    wanted = scoring(settings, features_info)
    if path.exists():
        saved = read_json(path)
        if saved.get("scoring") == wanted and saved.get("steps_trained") == summary["steps_trained"]:
            return saved
    started = time.monotonic()
    model, _ = load_stage(folder / stage, device=str(device))
    held_out = truth.draw(settings["elbo_draws"], seed=ELBO_SEED)
    fids = stage_fids(features, truth, model, settings["fid_draws"], settings["fid_resamples"], FID_SEED)
    scores = {"stage": stage, "scoring": wanted, **held_out_figures(model, held_out, seed=0), **fids,
              **{k: summary.get(k) for k in ("steps_trained", "converged", "plateau_gain", "stop_reason",
                                             "train_seconds")}}
    scores["score_seconds"] = time.monotonic() - started
    write_json(path, scores)
    return scores


def run_stage(stage: str, folder: Path, settings: dict, gan: GANConfig, progress: bool, device) -> dict:
    """Train (or continue) stage 1 or 2 of a dataset's folder and score it."""
    check_ready(folder, stage)
    truth = ground_truth(folder, device)
    if stage == "stage1-encoder":
        start = stage_model(truth, settings["ngf"], settings["ndf"])
    else:
        start, _ = load_stage(folder / "stage1-encoder", device=str(device))
    train_stage(stage_config(stage, truth, settings), folder / stage, truth, start, resume=True,
                progress=progress)
    features, info = fid_features(gan, progress)
    return score_stage(folder, stage, truth, settings, features, info, device)


def run_dataset(dataset: str, settings: dict, out: Path, progress: bool = True, inception: str | None = None,
                stage: str | None = None) -> dict:
    """Run the named stage of one dataset in out/<dataset> (None: every stage, in order, each continued
    where it stopped), then report on every stage finished."""
    started = time.monotonic()
    folder = Path(out) / _folder_name(dataset)
    gan = gan_config(dataset, settings, inception)
    device = resolve_device("auto")
    stages = STAGE_NAMES if stage is None else (stage,)
    for name in stages:
        if name == "gan":
            train_gan(gan, folder / "gan", resume=True, progress=progress)
        elif name in STAGES:
            run_stage(name, folder, settings, gan, progress, device)
    return {**report(dataset, folder, settings, device), "wall_seconds": time.monotonic() - started}


# -- the report ---------------------------------------------------------------------------------------

def _number(value: float) -> str:
    """Four significant digits, without an exponent above 1000 (an ELBO of -47 611 as -47611.0)."""
    return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.4g}"


def _pm(value: float | None, se: float | None) -> str:
    """"value ± se", the standard error to two significant digits ("value" where there is no spread; "-"
    for no value)."""
    if value is None:
        return "-"
    return _number(value) + (f" ± {se:.2g}" if se is not None and math.isfinite(se) else "")


def stage_rows(folder: Path) -> list[dict]:
    """The GAN's row (from its summary) and each scored stage's scores, in stage order."""
    rows = []
    gan = RunDir(folder / "gan")
    if _done(folder / "gan"):
        summary = gan.read_summary()
        rows.append({"stage": GAN_ROW, "gan_epochs": summary["epochs_trained"],
                     "selected_epoch": summary["selected_epoch"], "fid_gan_data": summary["fid"],
                     "train_seconds": summary["train_seconds"]})
    for stage in STAGES:
        path = folder / f"scores-{stage}.json"
        if _done(folder / stage) and path.exists():
            rows.append(read_json(path))
    return rows


def above(a: float, a_se: float, b: float, b_se: float) -> bool | None:
    """Whether b is above a by more than two standard errors of the difference (independent estimates):
    True; below by more: False; within them, or without a spread: None (cannot tell)."""
    spread = math.hypot(a_se, b_se)
    if not math.isfinite(spread) or abs(b - a) <= 2 * spread:
        return None
    return b > a


def _change(rows: dict, key: str) -> tuple[str, bool | None]:
    """"a ± se -> b ± se" of `key` from stage 1 to stage 2, and whether it went up (`above`)."""
    one, two = rows["stage1-encoder"], rows["stage2-joint"]
    holds = above(one[key], one[f"{key}_se"], two[key], two[f"{key}_se"])
    text = f"{_pm(one[key], one[f'{key}_se'])} -> {_pm(two[key], two[f'{key}_se'])}"
    return text + (" (within 2 s.e.)" if holds is None else ""), holds


def direction_claims(rows: list[dict]) -> list[dict]:
    """The paper's claims from stage 1 to stage 2 (module docstring), "cannot tell" where the rows
    cannot show them: a stage missing, a change within two standard errors, or (the re-decoding FIDs) a
    stage 1 that did not converge by its criterion."""
    by = {r["stage"]: r for r in rows}
    paper_elbo = f"{PAPER['stage1-encoder']['elbo']:g} -> {PAPER['stage2-joint']['elbo']:g}"
    paper_fid = f"{PAPER['stage1-encoder']['fid']:g} -> {PAPER['stage2-joint']['fid']:g}"
    labels = [("elbo", "the ELBO (held-out draws of the ground truth) improves with joint training",
               paper_elbo),
              ("fid_redecoded", "FID(ground truth g0(z), re-decoded g(mu(x))) gets worse", paper_fid),
              ("fid_re_sample", "the [Re] script's FID(g0(z), g(z ~ q) + sigma noise) gets worse",
               paper_fid + " (if table 1 was measured so)"),
              ("fid_prior", "(not in the paper) the decoder as a generator gets worse: FID(g0(z), g(z ~ "
               "N(0, I)))", "-")]
    claims = []
    missing = [s for s in STAGES if s not in by]
    for key, label, paper in labels:
        if missing:
            claims.append(claim(label, paper, f"{', '.join(missing)} not run", None))
            continue
        text, holds = _change(by, key)
        if key in ("fid_redecoded", "fid_re_sample") and not by["stage1-encoder"].get("converged"):
            text, holds = text + "; stage 1 did not converge by its criterion", None
        claims.append(claim(label, paper, text, holds))
    floor = ("the [Re] script's FID after joint training is above the noise floor FID(g0(z), g0(z) + sigma "
             "noise)")
    if "stage2-joint" not in by:
        claims.append(claim(floor, "not reported", "stage2-joint not run", None))
        return claims
    two = by["stage2-joint"]
    holds = above(two["fid_noise_floor"], two["fid_noise_floor_se"], two["fid_re_sample"],
                  two["fid_re_sample_se"])
    text = (f"floor {_pm(two['fid_noise_floor'], two['fid_noise_floor_se'])}, [Re] FID "
            f"{_pm(two['fid_re_sample'], two['fid_re_sample_se'])}")
    claims.append(claim(floor, "not reported", text + (" (within 2 s.e.)" if holds is None else ""), holds))
    return claims


TABLE_COLUMNS = ("stage", "steps", "converged", "ELBO", "-log e(z|x)", "R", "D", "FID re-decoded",
                 "FID [Re] sample", "FID noise floor", "FID prior", "RMSE", "train s", "score s")


def table_row(row: dict) -> dict:
    """One line of the table (figures with their standard errors as "value ± se")."""
    if row["stage"] == GAN_ROW:
        return {"stage": f"{GAN_ROW}, epoch {row['selected_epoch']} of {row['gan_epochs']}",
                "FID prior": f"{row['fid_gan_data']:.2f} (vs data)", "train s": row["train_seconds"]}
    return {"stage": row["stage"], "steps": row["steps_trained"], "converged": row["converged"],
            "ELBO": _pm(row["elbo"], row["elbo_se"]),
            "-log e(z|x)": _pm(row["conditional_nll"], row["conditional_nll_se"]),
            "R": row["rate"], "D": row["distortion"],
            "FID re-decoded": _pm(row["fid_redecoded"], row["fid_redecoded_se"]),
            "FID [Re] sample": _pm(row["fid_re_sample"], row["fid_re_sample_se"]),
            "FID noise floor": _pm(row["fid_noise_floor"], row["fid_noise_floor_se"]),
            "FID prior": _pm(row["fid_prior"], row["fid_prior_se"]),
            "RMSE": row["rmse_redecoded"], "train s": row["train_seconds"], "score s": row["score_seconds"]}


def markdown_table(rows: list[dict]) -> str:
    """One line per stage (and the GAN): ELBO, the conditional likelihood, R, D and the FIDs."""
    return records_table([table_row(r) for r in rows], TABLE_COLUMNS, number="{:.2f}")


def save_panel(folder: Path, dataset: str, truth: GroundTruth, settings: dict, device) -> None:
    """redecoded.png: held-out ground truth g0(z), x, and per finished stage its re-decodings g(mu(x))
    and its [Re]-style noisy re-decodings."""
    from rdvae.plots import image_columns, save_figure

    k = settings["panel"]
    draws = truth.draw(k, seed=PANEL_SEED)
    columns = [("ground truth g0(z)", draws.means.cpu()), ("x = g0(z) + noise", draws.x.clamp(0, 1).cpu())]
    for stage in STAGES:
        if _done(folder / stage):
            model, _ = load_stage(folder / stage, device=str(device))
            with seeded(PANEL_SEED, device):
                images = image_sets(model, draws)
            columns += [(f"g(mu(x)), {stage}", images["redecoded"].cpu()),
                        (f"[Re] sample, {stage}", images["re_sample"].cpu())]
    save_figure(image_columns(columns, f"{dataset}: ground truth and its re-decodings"), folder / "redecoded",
                formats=("png",))


def report(dataset: str, folder: Path, settings: dict, device) -> dict:
    """results.md (table and claims), redecoded.png and results.json of a dataset's folder, from the
    stages finished so far."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = stage_rows(folder)
    claims = direction_claims(rows)
    if _done(folder / "gan"):
        save_panel(folder, dataset, ground_truth(folder, device), settings, device)
    write_text(folder / "results.md",
               markdown_table(rows) + "\n\n" + claims_table(claims, paper="paper (CelebA)") + "\n")
    result = {"rows": rows, "claims": claims, "finished": [r["stage"] for r in rows]}
    write_json(folder / "results.json", result)
    return result


# -- the command ---------------------------------------------------------------------------------------

def _run_one(dataset, settings, out, progress, inception, stage, threads):
    set_threads(threads)
    return run_dataset(dataset, settings, out, progress, inception, stage)


def run(scale: str, out: Path, progress: bool = True, workers: int = 1, dataset: str | None = None,
        inception: str | None = None, stage: str | None = None) -> dict:
    """Every dataset of the scale (or `dataset` alone): the named `stage` (gan, stage1-encoder,
    stage2-joint, report; None: all of them in order), `workers` datasets side by side (one process each,
    the free cores split between them); a dataset that fails is reported and the others go on.
    out/results.json keeps the last report of every dataset run into `out`."""
    settings = SCALES[check_scale(scale)]
    if stage is not None and stage not in STAGE_NAMES:
        raise ConfigError(f"stage must be one of {', '.join(STAGE_NAMES)}, got {stage!r}")
    datasets = (dataset,) if dataset else settings["datasets"]
    if not datasets:
        raise ConfigError("the paper scale trains on CelebA 64 x 64: pass the image folder with --dataset "
                         "PATH (e.g. img_align_celeba/), and an Inception TorchScript file with --inception")
    out = Path(out)
    for name in datasets:   # a stage whose inputs are missing is refused before anything runs
        check_ready(out / _folder_name(name), stage)
    started = time.monotonic()
    path = out / "results.json"
    results = read_json(path) if path.exists() else {}
    results = {"scale": scale, "settings": settings, "datasets": dict(results.get("datasets", {}))}
    if workers > 1 and len(datasets) > 1:
        from rdvae.device import free_cores

        threads = max(1, free_cores() // workers)
        with ProcessPoolExecutor(min(workers, len(datasets)), mp_context=get_context("spawn")) as pool:
            futures = {name: pool.submit(_run_one, name, settings, out, False, inception, stage, threads)
                       for name in datasets}
            for name, future in futures.items():
                results["datasets"][name] = _outcome(future.result)
    else:
        for name in datasets:
            results["datasets"][name] = _outcome(lambda name=name: run_dataset(name, settings, out, progress,
                                                                                inception, stage))
    results["wall_seconds"] = time.monotonic() - started
    results["stage"] = stage or "all"
    write_json(path, results)
    return results


def _outcome(call) -> dict:
    try:
        return {"status": "done", **call()}
    except Exception as err:  # noqa: BLE001 - one dataset's failure is reported, the others go on
        return {"status": "failed", "error": f"{type(err).__name__}: {' '.join(str(err).split())}"}
