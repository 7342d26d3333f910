"""Fixing a Broken ELBO (Alemi et al., ICML 2018): the two-cluster toy of section 4 and the
rate-distortion sweep of the twelve model families on static binarized MNIST (figs. 3, 4).

Toy: the 30-bin two-cluster data with I(x; z*) = 0.5 nats and the 30-state discrete model
(two_cluster, beside this module), trained with exact expectations by the ELBO and with a
target rate of 0.5; R, D and the recovered cluster masses, and a figure after fig. 2.

MNIST: families (-,+) x (-,+) x (-,+,v) (encoder, decoder, marginal; families) trained
with the beta objective, gathered by rdvae.sweep into results.csv, drawn by rdvae.plots as
fig. 3a (RD plane with the H_hat line, Pareto frontier, convex hull) and fig. 3b (-ELBO vs R),
figs. 4a/b (family -+v across beta: reconstructions with z resampled and several decoder draws
per z, and samples), 4c and 5 (the families at beta = 1), 4d (frontier models of near-identical
ELBO) and 6 (a walk along the frontier). Every run gets a regime label from I_q and D (`regime`)
and a class agreement (do reconstructions keep the digit?), and the paper's section-4 claims are
checked on the grid (claims). Scales:

    smoke  digits (8x8), families -+v, --v, +++ at beta 0.1 and 1 (and -+v at 1.1), tiny widths,
           3 epochs at most (plateau schedule); toy 300 steps, 2 seeds (seconds, for tests)
    cpu    binarized MNIST, all 50 000 training images, the "mlp"-coded families: an MLP encoder
           (512-256, ReLU), the MLP simple decoder, a narrow PixelCNN++ (8 channels, 3 levels, 1
           resnet layer per block) as the autoregressive decoder, MADE 2 x 256 IAF and MAF, 100
           pseudo-inputs, latent size 64; autoregressive-decoder families at beta {0.1, 1} with one
           epoch of KL annealing, at most 10 epochs; simple-decoder families at beta {0.5, 1, 2}, at
           most 60 epochs; -+v also at 0.15, 0.5, 1.1, 2 (fig. 4): 34 runs. Each run trains at a
           constant Adam 1e-3 until its validation objective plateaus (TrainConfig.plateau_epochs,
           plateau_nats) or the cap nears, then decays linearly to 0 (lr_schedule "plateau");
           toy 10 000 steps, the mixed reading from 10 seeds
    paper  binarized MNIST (50k/10k/10k), all 12 families x 13 betas in [0.1, 10], with and
           without KL annealing, the paper's sizes (full conv stacks, MADE 3 x 640, PixelCNN 64
           channels, two resnet layers per block, 500 pseudo-inputs), 200 epochs, Adam 3e-4 with normalized
           gradients, constant for 100 epochs then linear to 0 (for a GPU)

The MNIST grid grows in named stages (stages.py), each a resumable addition to the same sweep
folder; the analysis reads every finished run of every stage run so far:

    grid        the scale's grid above (the default)
    corner      cpu: the six simple-decoder families at beta 0.1 (the autoencoding corner) and at 5
                and 10 (low rate), no annealing, plateau or 60 epochs: 18 runs (smoke: --v at 5, 10)
    unannealed  cpu: the six PixelCNN families at beta 1 and -+v at 1.1 without KL annealing, plateau
                or 20 epochs: 7 runs, rows of their own beside the annealed ones (smoke: 3 runs)

    rdvae repro broken-elbo --scale cpu --stage corner --workers 2 --out runs/be-cpu

`run(..., families=..., betas=...)` restricts the grid (the same settings otherwise), for
running part of a scale where the whole does not fit; `families` restricts any stage.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from rdvae.data import load_dataset
from rdvae.errors import ConfigError
from rdvae.fid.classifier import feature_classifier
from rdvae.presets import options_for
from rdvae.rundir import RunDir, read_json, write_json
from rdvae.sweep import SweepSpec, product, run_sweep, sweep
from rdvae.train import final_evaluation, load_run, train

from ..common import check_scale, markdown_table, write_csv
from . import claims
from . import figures as panels
from .analysis import RESULT_COLUMNS, assess, draw_rd_figures, fig4_table, panel_runs, runs_table  # noqa: F401
from .families import PAPER_CODES, paper_code
from .paper import FIG4_FAMILY, PAPER_BETAS, PAPER_FIG4, PAPER_H_HAT  # noqa: F401 - the study's numbers
from .regimes import (  # noqa: F401 - the regime rule, as the study names it
    AUTODECODER_INFORMATION,
    AUTOENCODER_DISTORTION,
    SEMANTIC_RATE,
    regime,
)
from .stages import GRID, check_stage, grow_sweep, run_names, stage_of
from .toy import PAPER as PAPER_TOY
from .toy import run_toy
from .two_cluster import FORMS

NAME = "broken-elbo"
DESCRIPTION = ("Alemi et al. 2018: the two-cluster toy (target rate vs ELBO) and the RD sweep of the "
               "12 encoder/decoder/marginal families on static MNIST (figs. 2-4)")

FAMILIES = PAPER_CODES
SMOKE_PLATEAU = {"plateau_epochs": 1, "plateau_nats": 0.5, "decay_epochs": 1}
# the plateau criterion of the cpu scale per decoder: PixelCNN (+) and MLP (-)
CPU_PLATEAU = {"+": {"plateau_epochs": 2, "plateau_nats": 0.5, "decay_epochs": 2},
               "-": {"plateau_epochs": 5, "plateau_nats": 0.5, "decay_epochs": 5}}
# the cap of the cpu scale's unannealed PixelCNN runs (issue 30: at least 20): 7 runs of at most 20 epochs of
# about 70 s on an idle core take at most about 1.6 h on 2 workers, within a stage's 2.5 h
UNANNEALED_EPOCHS = 20

SCALES = {
    "smoke": dict(
        dataset="digits", binarize="static", families=("-+v", "--v", "+++"), family_prefix="",
        betas=(0.1, 1.0), anneal=(1,), epochs=3, batch_size=128, lr=1e-3, lr_schedule="plateau",
        normalized_gradients=False, plateau=SMOKE_PLATEAU,
        latent_dim=8, model={"made_hidden": [16, 16, 16], "pixelcnn_channels": 8, "pixelcnn_levels": 2,
                             "pixelcnn_resnet_layers": 1, "pseudo_inputs": 10},
        extra_pairs=((FIG4_FAMILY, 1.1),), train_examples=None, eval_examples=None, toy_steps=300,
        toy_seeds=2,
        grid_examples=3,
        decoder_draws=2,
        stages={"corner": dict(description="--v at beta 5 and 10, not annealed", decoder="-",
                               betas=(5.0, 10.0), extra_pairs=(), anneal=0, epochs=3, plateau=SMOKE_PLATEAU),
                "unannealed": dict(description="-+v and +++ at beta 1 and -+v at 1.1 without KL annealing",
                                   decoder="+", betas=(1.0,), extra_pairs=((FIG4_FAMILY, 1.1),), anneal=0,
                                   epochs=3, plateau=SMOKE_PLATEAU)}),
    # the 2 x 2 x 3 design with an MLP encoder and simple decoder and a narrow PixelCNN++ (the "mlp"-coded
    # families, families.py; sizes from benchmarks/family_steps.py and benchmarks/ar_decoders.py),
    # on all 50 000 images, each run to a plateau of its validation objective or its epoch cap; epochs,
    # betas, KL annealing (epochs) and the plateau criterion per decoder ("+": PixelCNN, "-": MLP)
    "cpu": dict(
        dataset="binarized-mnist", binarize=None, families=FAMILIES, family_prefix="mlp",
        betas={"+": (0.1, 1.0), "-": (0.5, 1.0, 2.0)},
        extra_pairs=tuple((FIG4_FAMILY, b) for b in (0.15, 0.5, 1.1, 2.0)),
        anneal={"+": 1, "-": 0}, epochs={"+": 10, "-": 60}, batch_size=128, lr=1e-3, lr_schedule="plateau",
        normalized_gradients=False,
        plateau=CPU_PLATEAU,
        latent_dim=64, model={"hidden": [512, 256], "activation": "relu", "pixelcnn_channels": 8,
                              "pixelcnn_levels": 3, "pixelcnn_resnet_layers": 1, "made_hidden": [256, 256],
                              "pseudo_inputs": 100},
        train_examples=None, eval_examples=None, toy_steps=10000, toy_seeds=10, grid_examples=5,
        decoder_draws=5,
        # the stages after the grid (issue 30): the simple decoders toward both corners, where claims on
        # low rates and on the autoencoding corner speak, and the PixelCNN runs at beta = 1 without KL
        # annealing, beside the grid's annealed ones (the paper ran both)
        stages={"corner": dict(description="the 6 simple-decoder families at beta 0.1 (the autoencoding "
                                           "corner), 5 and 10 (low rate), not annealed, plateau or 60 "
                                           "epochs: 18 runs", decoder="-", betas=(0.1, 5.0, 10.0),
                               extra_pairs=(), anneal=0, epochs=60, plateau=CPU_PLATEAU["-"]),
                "unannealed": dict(description=f"the 6 PixelCNN families at beta 1 and -+v at 1.1 without KL "
                                               f"annealing, plateau or {UNANNEALED_EPOCHS} epochs: 7 runs",
                                   decoder="+", betas=(1.0,), extra_pairs=((FIG4_FAMILY, 1.1),), anneal=0,
                                   epochs=UNANNEALED_EPOCHS, plateau=CPU_PLATEAU["+"])}),
    "paper": dict(
        dataset="binarized-mnist", binarize=None, families=FAMILIES, family_prefix="", betas=PAPER_BETAS,
        anneal=(0, 10), epochs=200, batch_size=100, lr=3e-4, lr_schedule="paper", normalized_gradients=True,
        plateau=None,
        latent_dim=64, model={"made_hidden": [640, 640, 640], "pixelcnn_channels": 64, "pixelcnn_levels": 3,
                              "pixelcnn_resnet_layers": 2, "pseudo_inputs": 500},
        extra_pairs=(), train_examples=None, eval_examples=None, toy_steps=10000, toy_seeds=10,
        grid_examples=5, decoder_draws=5),
}

# --- MNIST sweep ---------------------------------------------------------------------------

def scale_settings(scale: str, overrides: dict | None = None) -> dict:
    """The settings of a scale, with `overrides` (any SCALES key, e.g. epochs, train_examples)."""
    s = dict(SCALES[check_scale(scale)])
    unknown = set(overrides or {}) - set(s)
    if unknown:
        raise ValueError(f"unknown broken-elbo settings {sorted(unknown)}; known: {', '.join(sorted(s))}")
    return {**s, **(overrides or {})}


def _families(families: Sequence[str] | None, s: dict) -> tuple[str, ...]:
    """The given paper codes (default: the scale's), or a ConfigError naming the unknown ones."""
    families = tuple(families or s["families"])
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ConfigError(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    return families


def _steps_per_epoch(s: dict) -> int:
    return math.ceil((s["train_examples"] or _train_size(s["dataset"])) / s["batch_size"])


def _base(s: dict) -> dict:
    """The settings every run of a scale shares."""
    return {"dataset": s["dataset"], "binarize": s["binarize"], "latent_dim": s["latent_dim"],
            "batch_size": s["batch_size"], "lr": s["lr"],
            "lr_schedule": s["lr_schedule"], "normalized_gradients": s["normalized_gradients"], "seed": 0,
            "eval_batch_size": 500}


def mnist_spec(scale: str, families: Sequence[str] | None = None, betas: Sequence[float] | None = None,
               overrides: dict | None = None, pairs: Sequence[tuple[str, float]] | None = None) -> SweepSpec:
    """The sweep of a scale's grid stage (optionally restricted to some families / betas, or to explicit
    (family, beta) pairs). Families are given by their paper codes; the scale's family_prefix names
    the registered family each code trains ("mlp" + "-+v" at the cpu scale). Betas and KL annealing
    may differ by decoder (a mapping from the decoder's code, "-" or "+")."""
    s = scale_settings(scale, overrides)
    families = _families(families, s)
    steps_per_epoch = _steps_per_epoch(s)
    base = _base(s)
    if not pairs:  # the grid, then the fig. 4 betas of -+v that it lacks
        pairs = [(f, b) for f in families for b in (betas or _by_decoder(s["betas"], f))]
        pairs += [(f, b) for f, b in s["extra_pairs"] if f in families and (f, b) not in pairs]
    if _per_decoder(s["betas"]):   # a per-decoder grid: the costliest runs first, for a pool of workers
        pairs = sorted(pairs, key=lambda p: [c != "+" for c in p[0]])
    points = [{"family": s["family_prefix"] + f, "beta": b} for f, b in pairs]
    names = SweepSpec(points=[{"family": f, "beta": b} for f, b in pairs]).names
    for point in points:
        code = paper_code(point["family"])
        point.update(epochs=_by_decoder(s["epochs"], code), **(_by_decoder(s["plateau"], code) or {}))
        if _per_decoder(s["anneal"]):   # per decoder, in epochs
            point["kl_anneal_steps"] = _by_decoder(s["anneal"], code) * steps_per_epoch
    if not _per_decoder(s["anneal"]):
        anneal = [epochs * steps_per_epoch for epochs in s["anneal"]]
        if len(anneal) == 1:
            base["kl_anneal_steps"] = anneal[0]
        else:
            names = SweepSpec(points=product([{"family": f, "beta": b} for f, b in pairs],
                                             sweep("kl_anneal_steps", anneal))).names
            points = product(points, sweep("kl_anneal_steps", anneal))
    return SweepSpec(base=base, points=[{**p, "model": options_for(p["family"], s["model"])} for p in points],
                     names=names)


def stage_spec(scale: str, stage: str, families: Sequence[str] | None = None,
               overrides: dict | None = None) -> SweepSpec:
    """The runs a stage of a scale adds (stages.py): the grid stage's sweep (mnist_spec), or a further
    stage's (SCALES[scale]["stages"][stage]: the scale's families of one decoder at the stage's betas,
    and its extra (family, beta) pairs, each with the stage's epochs, plateau criterion and KL annealing,
    named "<stage>-family=<code>_beta=<beta>"). `families` (paper codes) keeps only those."""
    s = scale_settings(scale, overrides)
    check_stage(stage, scale, s)
    if stage == GRID:
        return mnist_spec(scale, families, overrides=overrides)
    settings = s["stages"][stage]
    families = _families(families, s)
    pairs = [(f, b) for f in s["families"] if f in families and f[1] == settings["decoder"]
             for b in settings["betas"]]
    pairs += [(f, b) for f, b in settings["extra_pairs"] if f in families and (f, b) not in pairs]
    if not pairs:
        raise ConfigError(f"stage {stage!r} has no runs among the families {', '.join(families)} (it trains "
                          f"{settings['description']})")
    anneal_steps = settings["anneal"] * _steps_per_epoch(s)
    points = [{"family": s["family_prefix"] + f, "beta": b, "epochs": settings["epochs"],
               **settings["plateau"], "kl_anneal_steps": anneal_steps,
               "model": options_for(s["family_prefix"] + f, s["model"])} for f, b in pairs]
    return SweepSpec(base=_base(s), points=points, names=run_names(stage, pairs))


def grid_annealing(scale: str) -> dict[str, bool]:
    """Whether the grid stage of a scale KL-anneals a family's runs, by its decoder ("+", "-"): what a
    results CSV written before the annealed column existed leaves to be known (analysis.read_results).
    ConfigError for a scale whose grid trains each run both with and without annealing."""
    anneal = scale_settings(scale)["anneal"]
    if _per_decoder(anneal):
        return {d: anneal[d] > 0 for d in "+-"}
    if len(anneal) > 1:
        raise ConfigError(f"the {scale} grid trains every run with and without KL annealing; its results "
                          "CSVs say which run was annealed (the annealed column)")
    return {d: anneal[0] > 0 for d in "+-"}


def _by_decoder(setting, code: str):
    """A setting that may be given per decoder ({"-": ..., "+": ...}) for the family `code`."""
    return setting[code[1]] if _per_decoder(setting) else setting


def _per_decoder(setting) -> bool:
    return isinstance(setting, dict) and set(setting) == {"-", "+"}


def _train_size(dataset: str) -> int:
    return {"binarized-mnist": 50000, "digits": 1297}.get(dataset, 50000)


def _subset(dataset, train_examples: int | None, eval_examples: int | None):
    """The first examples of each split (labels alongside)."""
    if not train_examples and not eval_examples:
        return dataset
    sizes = {"train": train_examples, "valid": eval_examples, "test": eval_examples}
    cut = {k: getattr(dataset, k)[:n] if n else getattr(dataset, k) for k, n in sizes.items()}
    labels = {k: (v[:sizes[k]] if v is not None and sizes.get(k) else v) for k, v in dataset.labels.items()}
    note = f"{dataset.note} first {train_examples or 'all'} train / {eval_examples or 'all'} eval".strip()
    return dataclasses.replace(dataset, **cut, labels=labels, note=note)


def run_mnist(scale: str, out: Path, families=None, betas=None, progress: bool = True,
              overrides: dict | None = None, shard: tuple[int, int] | None = None,
              pairs: Sequence[tuple[str, float]] | None = None, workers: int | None = None,
              stage: str = GRID) -> list[dict]:
    """Train a stage's runs into out/runs/ and gather results.csv with rdvae.sweep: the folder's sweep
    grown by the stage's runs (stages.grow_sweep), so that every run of every stage trained there is a
    row. With a reduced training set the runs are trained here on that subset and then recorded by the
    sweep; otherwise the sweep trains them itself. `shard=(k, n)` trains only the runs whose
    index is k mod n and records nothing (n processes side by side; then run once unsharded)."""
    s = scale_settings(scale, overrides)
    if stage == GRID:
        spec = mnist_spec(scale, families, betas, overrides, pairs)
    else:
        spec = stage_spec(scale, stage, families, overrides)
    spec = grow_sweep(out, spec)
    if s["train_examples"] or s["eval_examples"]:
        full = load_dataset(s["dataset"], binarize=s["binarize"])
        data = _subset(full, s["train_examples"], s["eval_examples"])
        failed = []
        for index, name in enumerate(tqdm(spec.names, desc="broken-elbo runs", disable=not progress)):
            run_dir = out / "runs" / name
            if shard is not None and index % shard[1] != shard[0]:
                continue
            summary = RunDir(run_dir).read_summary()
            try:
                if summary.get("status") != "done":
                    train(spec.config(index), run_dir, resume=(run_dir / "config.json").exists(),
                          progress=progress, dataset=data)
                elif summary.get("examples") != len(data.split(summary.get("split", "test"))):
                    _reevaluate(run_dir, data)   # trained, but evaluated on another slice
            except Exception as err:  # noqa: BLE001 - reported below, the other runs go on
                failed.append(f"{name}: {type(err).__name__}: {err}")
        if failed:
            raise RuntimeError("runs failed (rerun the same command to resume them):\n" + "\n".join(failed))
        if shard is not None:
            return []
    report = run_sweep(out, spec, workers=workers or 1, progress=progress)
    return report.rows


def _reevaluate(run_dir: Path, data) -> dict:
    """Evaluate a finished run again on its final split of `data` (not retrained) and update
    its summary: for runs whose evaluation split was changed after they were trained."""
    trained = load_run(run_dir, device="cpu", dataset=data)
    final = final_evaluation(trained.model, data.split(trained.config.final_split), trained.config)
    return trained.run.update_summary(**final)


def fig4_panel(out: Path, rows: list[dict], examples: int, decoder_draws: int = 5) -> list[str]:
    """Fig. 4a/b: reconstructions (z resampled, several decoder draws per z) and samples of the -+v
    runs, in order of beta (at one beta the KL-annealed run first)."""
    from rdvae.plots import reconstruction_grid, samples_grid, save_figure
    from rdvae.plots.sweep_figures import pick_inputs

    chosen = sorted((r for r in rows if paper_code(r["family"]) == FIG4_FAMILY),
                    key=lambda r: (r["beta"], not r.get("annealed")))
    if not chosen:
        return []
    mixed = len({r.get("annealed") for r in chosen}) > 1   # say which runs were annealed where both are shown
    models, x = [], None
    for row in chosen:
        trained = load_run(out / row["run_dir"], device="cpu")
        kind = (", annealed" if row.get("annealed") else ", not annealed") if mixed else ""
        label = f"β = {row['beta']:g}{kind}\nR {row['rate']:.1f}, D {row['distortion']:.1f}\n{row['regime']}"
        models.append((label, trained.model))
        if x is None:
            ds = trained.dataset
            x = pick_inputs(ds.split("test"), ds.labels.get("test"), examples)
    files = save_figure(reconstruction_grid(models, x, f"Family {FIG4_FAMILY}: reconstructions", z_draws=2,
                                            decoder_draws=decoder_draws),
                        out / "figures" / "fig4_reconstructions")
    files += save_figure(samples_grid(models, f"Family {FIG4_FAMILY}: samples z ~ m(z)", n=examples,
                                      decoder_draws=decoder_draws),
                         out / "figures" / "fig4_samples")
    return [str(f) for f in files]


def fig4_from_runs(run_dirs: Sequence[str | Path], out: str | Path, h_hat: float, examples: int = 4,
                   decoder_draws: int = 2) -> dict:
    """The fig. 4 panel and table for any finished -+v runs (e.g. some trained longer than the
    grid), regimes judged against the entropy estimate `h_hat`; figures go to out/figures."""
    rows = []
    for run_dir in run_dirs:
        summary = RunDir(run_dir).read_summary()
        if summary.get("status") != "done":
            raise ValueError(f"{run_dir} is not a finished run (train or resume it first)")
        rows.append({**summary, **run_facts(run_dir), "run_dir": str(Path(run_dir).resolve()),
                     "regime": regime(summary["rate"], summary["distortion"], summary.get("mutual_info"),
                                       h_hat)})
    figures = fig4_panel(Path(out), rows, examples, decoder_draws)
    return {"figures": figures, "table": fig4_table(rows)}


# --- tables --------------------------------------------------------------------------------

def toy_table(toy: dict) -> str:
    """Both objectives for each reading of the toy model beside the true process and the paper."""
    lines = []
    entries = [("true process", "optimal (2 states)", toy["optimal"], {})]
    for form in FORMS:
        if form in toy:
            entries += [(form, "ELBO", toy[form]["elbo"], PAPER_TOY["elbo"]),
                        (form, "target rate 0.5", toy[form]["target_rate"], PAPER_TOY["target_rate"])]
    for form, label, res, paper in entries:
        masses = " / ".join(f"{m:.1%}" for m in res["cluster_masses"])
        paper_masses = " / ".join(f"{m:.0%}" for m in paper.get("cluster_masses", []))
        lines.append([form, label, f"{res['rate']:.4f}", f"{res['distortion']:.4f}", f"{res['elbo']:.4f}",
                      masses, f"{res['class_agreement']:.1%}", paper.get("rate", ""), paper_masses])
    return markdown_table(["model", "objective", "R (nats)", "D (nats)", "ELBO", "clusters (q mass)",
                           "cluster = class", "paper R", "paper clusters"], lines)


def toy_seeds_table(seeds: list[dict], entropy: float) -> str:
    """The main reading trained from several initialisations: one line per seed."""
    lines = []
    for row in seeds:
        e, t = row["elbo"], row["target_rate"]
        masses = " / ".join(f"{m:.1%}" for m in t["cluster_masses"])
        lines.append([row["seed"], f"{e['rate']:.4f}", f"{-e['elbo'] - entropy:.4f}", f"{t['rate']:.4f}",
                      f"{t['distortion']:.4f}", masses, f"{t['class_agreement']:.1%}"])
    return markdown_table(["seed", "ELBO: R", "ELBO: -ELBO - H", "target 0.5: R", "target 0.5: D", "clusters",
                           "cluster = class"], lines)


# --- analysis of a finished grid --------------------------------------------------------

# the grey-level dataset whose classifier judges whether reconstructions keep the class
CLASSIFIER_DATA = {"binarized-mnist": "mnist", "digits": "digits"}
# which test images class agreement is measured on (kept in the summary with the result)
CLASS_INPUTS = f"{claims.CLASS_EXAMPLES} evenly spaced"


def measure_class_agreement(sweep_dir: Path, rows: list[dict], dataset: str, progress: bool = True) -> None:
    """row["class_agreement"], ["class_chance"] and ["class_kappa"] for every run (claims.class_agreement
    on CLASS_EXAMPLES test images spaced evenly through the split: binarized MNIST's test split is
    stored sorted by class, so its first images are all zeros), computed once and kept in the run's
    summary.json with the name of the input selection (a summary measured on other inputs is redone)."""
    from rdvae.plots.sweep_figures import pick_inputs

    grey = CLASSIFIER_DATA.get(dataset)
    if grey is None:
        return
    classifier = None
    for row in tqdm(rows, desc="class agreement", disable=not progress):
        run = RunDir(sweep_dir / row["run_dir"])
        summary = run.read_summary()
        if summary.get("class_chance") is None or summary.get("class_inputs") != CLASS_INPUTS:
            if classifier is None:
                classifier, _ = feature_classifier(grey, progress=progress)
            trained = load_run(run.path, device="cpu")
            x = pick_inputs(trained.dataset.split("test"), None, claims.CLASS_EXAMPLES)
            agreement, chance = claims.class_agreement(trained.model, x, classifier)
            summary = run.update_summary(class_agreement=agreement, class_chance=chance,
                                         class_inputs=CLASS_INPUTS)
        row.update(class_agreement=summary["class_agreement"], class_chance=summary["class_chance"],
                   class_kappa=claims.kappa(summary["class_agreement"], summary["class_chance"]))


def run_facts(run_dir: str | Path) -> dict:
    """What a run's folder says of it beyond its summary: whether it was KL-annealed (its config's
    kl_anneal_steps > 0) and the stage it belongs to (its name, stages.stage_of)."""
    config = RunDir(run_dir).read_config()
    return {"annealed": (config.get("kl_anneal_steps") or 0) > 0, "stage": stage_of(str(run_dir))}


def analyse_mnist(sweep_dir: Path, rows: list[dict], s: dict, progress: bool = True) -> dict:
    """Regimes, class agreement, the frontier, the claims, the figures and the results CSV of the
    finished runs of every stage trained in `sweep_dir` (analysis.assess, with what needs the trained
    models: class agreement, figs. 4a/b, 4c, 4d, 5 and 6)."""
    rows = [dict(r) for r in rows if r.get("status") == "done"]
    if not rows:
        raise RuntimeError(f"no finished runs in {sweep_dir}; train the grid first")
    for r in rows:
        r.update(run_facts(sweep_dir / r["run_dir"]), run_dir=r["run_dir"])
    measure_class_agreement(sweep_dir, rows, s["dataset"], progress)
    rows, summary = assess(rows)
    figures = draw_rd_figures(rows, sweep_dir / "figures", _where(rows))
    figures += fig4_panel(sweep_dir, rows, s["grid_examples"], s["decoder_draws"])
    figures += model_panels(sweep_dir, rows, s["grid_examples"], s["decoder_draws"])
    csv_path = sweep_dir / "broken_elbo_results.csv"
    write_csv(csv_path, sorted(rows, key=lambda r: (r["code"], r["beta"], not r["annealed"])), RESULT_COLUMNS)
    return {**summary, "figures": figures, "results_csv": str(csv_path)}


def _where(rows: list[dict]) -> str:
    """'binarized-mnist, test split': the data the runs were evaluated on."""
    first = rows[0]
    return ", ".join(str(v) for v in (first.get("dataset"), first.get("split") and f"{first['split']} split")
                     if v)


def model_panels(sweep_dir: Path, rows: list[dict], examples: int, decoder_draws: int) -> list[str]:
    """Figs. 4c (four families at beta = 1), 5 (every family at beta = 1), 4d (frontier models of
    near-identical ELBO) and 6 (a walk along the frontier): reconstructions and samples of each."""
    figures = sweep_dir / "figures"
    titles = {"fig4c": "Fig. 4c: four families at β = 1", "fig5": "Fig. 5: every family at β = 1",
              "fig4d": "Fig. 4d: frontier models of near-identical ELBO",
              "fig6": "Fig. 6: a walk along the frontier"}
    files = []
    for stem, runs in panel_runs(rows).items():
        files += panels.draw_model_panel(sweep_dir, runs, figures / stem, titles[stem], inputs=examples,
                                         decoder_draws=decoder_draws)
    return files


# --- entry point ---------------------------------------------------------------------------

def _toy_result(toy_out: dict) -> dict:
    """The toy's part of result.json (and its tables) from what run_toy returned (toy.json)."""
    keys = ("rate", "distortion", "cluster_masses", "class_agreement")
    result: dict = {"toy": {"optimal": {k: toy_out["optimal"][k] for k in keys}}}
    for form in FORMS:
        result["toy"][form] = {obj: {k: toy_out[form][obj][k] for k in keys}
                               for obj in ("elbo", "target_rate")}
    if "seeds" in toy_out:
        result["toy"]["seeds"] = toy_out["seeds"]
        result["toy_seeds_table"] = toy_seeds_table(toy_out["seeds"], toy_out["data"]["entropy"])
    result["toy"]["data"] = {k: toy_out["data"][k]
                             for k in ("sigma", "centres", "mutual_information", "entropy")}
    result["toy_table"] = toy_table(toy_out)
    return result


def run(scale: str, out: Path, progress: bool = True, families: Sequence[str] | None = None,
        betas: Sequence[float] | None = None, toy: bool = True, mnist: bool = True,
        overrides: dict | None = None, shard: tuple[int, int] | None = None,
        pairs: Sequence[tuple[str, float]] | None = None, workers: int | None = None,
        stage: str = GRID) -> dict:
    """The reproduction at `scale` into `out`; families / betas / overrides (SCALES keys)
    restrict or shrink it, shard=(k, n) only trains every n-th MNIST run (see run_mnist); `workers`
    training processes share the cores (rdvae.sweep's local pool; 1: one after another).

    `stage` (stages.py; a scale's stages: stages.stage_names): "grid" trains the toy and the scale's grid;
    another stage adds its runs to the same MNIST sweep folder and trains no toy (result.json takes the
    toy's results from out/toy.json where an earlier call left them). Every stage ends with the analysis
    of every finished run in the folder. betas and pairs restrict the grid stage only."""
    out = Path(out)
    s = scale_settings(scale, overrides)
    check_stage(stage, scale, s)
    if stage != GRID and (betas or pairs):
        raise ConfigError(f"betas and pairs restrict the grid stage; stage {stage!r} trains its own runs "
                          f"({s['stages'][stage]['description']}); drop them (families may restrict it)")
    out.mkdir(parents=True, exist_ok=True)
    if shard is not None:
        run_mnist(scale, out / "mnist", families, betas, progress, overrides, shard, pairs, stage=stage)
        return {"scale": scale, "stage": stage, "shard": list(shard)}
    started = time.monotonic()
    result: dict = {"scale": scale, "stage": stage}
    if toy and stage == GRID:
        toy_out = run_toy(out, s["toy_steps"], progress=progress, seeds=s["toy_seeds"])
        write_json(out / "toy.json", toy_out)
        result.update(_toy_result(toy_out))
    elif toy and (out / "toy.json").exists():
        result.update(_toy_result(read_json(out / "toy.json")))
    if mnist:
        sweep_dir = out / "mnist"
        rows = run_mnist(scale, sweep_dir, families, betas, progress, overrides, pairs=pairs, workers=workers,
                         stage=stage)
        result.update(analyse_mnist(sweep_dir, rows, s, progress))
    result["seconds"] = time.monotonic() - started
    write_json(out / "result.json", result)
    return result
