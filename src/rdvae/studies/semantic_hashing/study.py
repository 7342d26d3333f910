"""Semantic hashing on 20 Newsgroups with a Bernoulli VAE: word counts versus frequencies
("VAE Approximation Error: ELBO and Exponential Families", sec. 5 of its reproduction [Re]).

Data: Rennie's bydate bag of words (11 269 train / 7 505 test documents), the 10 000 words of
highest training document frequency, each document smoothed by adding the training corpus's
word frequencies (one pseudo-word, as the [Re] code does). Encoders (to the logits of b bits):
e1 word counts -> Linear; e2 frequencies -> 512 -> Linear; e3 frequencies -> Linear. Decoder:
d hidden layers of 512, then Linear -> 10 000 and a log-softmax. Marginal Bernoulli(1/2).
DisARM gradients, Adam 1e-3, batch 256, seed 1; the paper scale adds 500 epochs averaging 10
estimator passes after 1000 epochs. Reported: the minimum over epochs of the test negative
ELBO in the [Re] convention (distortion relative to each document's own word distribution,
see rdvae.components.bagofwords), beside tables 2 and 3, and retrieval precision@100 of the
codes (test queries against the training documents, Hamming ranking, newsgroup labels).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import torch

from rdvae.components.bagofwords import corpus_smoothing, saturated_distortion
from rdvae.data import Dataset, load_dataset
from rdvae.evaluate.retrieval import precision_at_k
from rdvae.rundir import RunDir, write_json
from rdvae.train import TrainConfig, load_run, train

from ..common import check_scale, markdown_table, write_csv

NAME = "semantic-hashing"
DESCRIPTION = "20 Newsgroups Bernoulli VAE: e1/e2/e3 encoders, bits, decoder depth, DisARM ([Re] tables 2-3)"

ENCODERS = {"e1": "hash-e1", "e2": "hash-e2", "e3": "hash-e3"}   # encoder -> its family (families.py)
BITS = (8, 16, 32, 64)
DEPTHS = (0, 1, 2)
FULL_GRID = [(e, b, d) for d in DEPTHS for b in BITS for e in ENCODERS]
# cpu: the d = 0 column (where the published best, 387, sits), in order of priority: every
# encoder at b = 64, then the cheaper e1 and e3 at smaller b, then e2 (its 10 000 x 512 hidden
# layer makes an epoch ~4x dearer)
CPU_GRID = [("e1", 64, 0), ("e2", 64, 0), ("e3", 64, 0)] \
    + [(e, b, 0) for b in (32, 16, 8) for e in ("e1", "e3")] + [("e2", b, 0) for b in (32, 16, 8)]
SEED, LR, BATCH = 1, 1e-3, 256
SCALES = {
    "smoke": {"grid": [("e1", 8, 0), ("e3", 8, 1)], "epochs": 2, "refine_epochs": 1, "refine_passes": 2,
              "documents": (512, 256)},
    # deeper decoders cost ~4x per epoch and do not fit a shared 2-core machine
    "cpu": {"grid": CPU_GRID, "epochs": 10, "refine_epochs": 0, "refine_passes": None, "documents": None},
    "paper": {"grid": FULL_GRID, "epochs": 1000, "refine_epochs": 500, "refine_passes": 10,
              "documents": None},
}

# [Re] table 3 (test) and table 2 (train) negative ELBO, nats: {(encoder, bits, depth): value}
_TEST = {8: (423, 444, 439, 413, 453, 427, 419, 431, 431),
         16: (409, 451, 430, 403, 466, 431, 408, 448, 441),
         32: (397, 439, 433, 396, 454, 455, 402, 466, 473),
         64: (387, 460, 467, 393, 486, 481, 401, 484, 478)}
_TRAIN = {8: (406, 419, 432, 325, 382, 407, 325, 363, 415),
          16: (372, 383, 418, 191, 298, 397, 169, 287, 406),
          32: (332, 343, 409, 153, 181, 391, 118, 170, 405),
          64: (288, 304, 405, 151, 174, 391, 122, 165, 401)}
PUBLISHED_TEST = {(e, b, d): row[3 * d + i] for b, row in _TEST.items() for d in DEPTHS
                  for i, e in enumerate(ENCODERS)}
PUBLISHED_TRAIN = {(e, b, d): row[3 * d + i] for b, row in _TRAIN.items() for d in DEPTHS
                   for i, e in enumerate(ENCODERS)}
PUBLISHED_ORIGINAL_ARM = {8: 423, 16: 409, 32: 396, 64: 392}  # original paper, e1, d = 0, ARM


def smoothed_corpus(ds: Dataset, documents: tuple[int, int] | None = None, seed: int = SEED) -> Dataset:
    """The [Re] data: counts plus the training corpus's smoothed word frequencies; optionally a
    random subset of (train, test) documents for smoke runs."""
    train_x, test_x = ds.train, ds.test
    labels = dict(ds.labels)
    if documents is not None:
        g = torch.Generator().manual_seed(seed)
        keep_train = torch.randperm(len(train_x), generator=g)[: documents[0]]
        keep_test = torch.randperm(len(test_x), generator=g)[: documents[1]]
        train_x, test_x = train_x[keep_train], test_x[keep_test]
        labels = {"train": ds.labels["train"][keep_train], "valid": ds.labels["valid"],
                  "test": ds.labels["test"][keep_test]}
    smoothing = corpus_smoothing(train_x)
    return dataclasses.replace(ds, train=train_x + smoothing, test=test_x + smoothing, labels=labels,
                               note=(ds.note + "; " if ds.note else "") + "smoothed with corpus frequencies")


def config_for(encoder: str, bits: int, depth: int, epochs: int, refine_epochs: int,
               refine_passes: int | None, train_size: int, estimator: str = "disarm") -> TrainConfig:
    steps_per_epoch = math.ceil(train_size / BATCH)
    model = {"decoder_hidden": [512] * depth, "estimator": estimator, "passes": 1}
    if refine_epochs and refine_passes:
        model.update(refine_passes=refine_passes, refine_after_steps=epochs * steps_per_epoch)
    return TrainConfig(dataset="20newsgroups", family=ENCODERS[encoder], latent_dim=bits, model=model,
                       epochs=epochs + refine_epochs, batch_size=BATCH, lr=LR, seed=SEED,
                       eval_split="test", final_split="test", iw_samples=0, checkpoint_minutes=5.0)


def binary_codes(model, x: torch.Tensor, batch: int = 2000) -> torch.Tensor:
    """Each document's code: the most probable bits, 1[sigmoid(a) > 1/2]."""
    with torch.inference_mode():
        return torch.cat([(model.encoder(x[i:i + batch]).mean > 0.5).float()
                          for i in range(0, len(x), batch)])


def measure_run(path: Path, ds: Dataset, saturated: dict[str, float]) -> dict:
    """The [Re]-convention figures of one finished run, from its metrics and weights."""
    run = RunDir(path)
    metrics = run.read_metrics()
    summary = run.read_summary()
    test = [-m["elbo"] - saturated["test"] for m in metrics]
    train_loss = [m["train_loss"] - saturated["train"] for m in metrics]
    best = min(range(len(test)), key=test.__getitem__)
    model = load_run(path, device="cpu", dataset=ds).model
    precision = precision_at_k(binary_codes(model, ds.test), ds.labels["test"],
                               binary_codes(model, ds.train), ds.labels["train"], k=min(100, len(ds.train)))
    return {"epochs": len(metrics), "test_neg_elbo_min": test[best], "test_neg_elbo_min_epoch": best + 1,
            "test_neg_elbo_final": test[-1], "train_neg_elbo_min": min(train_loss),
            "test_rate": summary["rate"],
            "test_distortion_relative": summary["distortion"] - saturated["test"],
            "test_neg_elbo_proper": -summary["elbo"], "mutual_info": summary.get("mutual_info"),
            "active_units": summary.get("active_units"), "precision_at_100": precision,
            "train_seconds": summary["train_seconds"]}


def format_tables(rows: list[dict], epochs_note: str) -> str:
    """Test and train negative ELBO in the shape of [Re] tables 3 and 2, measured / published."""
    by_key = {(r["encoder"], r["bits"], r["depth"]): r for r in rows}
    header = ["b", *(f"d={d} {e}" for d in DEPTHS for e in ENCODERS)]

    def table(metric, published, title):
        lines = []
        for b in BITS:
            cells = []
            for d in DEPTHS:
                for e in ENCODERS:
                    r = by_key.get((e, b, d))
                    measured = f"{r[metric]:.0f}" if r else "-"
                    cells.append(f"{measured} / {published[(e, b, d)]}")
            lines.append([b, *cells])
        return f"**{title}** (measured / published; {epochs_note})\n\n" + markdown_table(header, lines)

    precisions = [[b, *(f"{by_key[(e, b, d)]['precision_at_100']:.3f}" if (e, b, d) in by_key else "-"
                  for d in DEPTHS for e in ENCODERS)] for b in BITS]
    precision = ["**Precision@100** (test queries, training database, Hamming ranking)", "",
                 markdown_table(header, precisions)]
    arm = "original paper (ARM), e1 d=0: " + ", ".join(
        f"b={b}: {v}" for b, v in PUBLISHED_ORIGINAL_ARM.items())
    return "\n\n".join([table("test_neg_elbo_min", PUBLISHED_TEST, "Test negative ELBO, minimum over epochs"),
                        arm, table("train_neg_elbo_min", PUBLISHED_TRAIN, "Train negative ELBO (epoch "
                                   "average while training, minimum over epochs)"), "\n".join(precision)])


def _epochs_note(sizes: dict) -> str:
    note = f"{sizes['epochs']} + {sizes['refine_epochs']} epochs" if sizes["refine_epochs"] \
        else f"{sizes['epochs']} epochs"
    return note + (f", documents {sizes['documents']}" if sizes["documents"] else "")


def write_rows(out: Path, rows: list[dict]) -> None:
    write_json(out / "results.json", {"rows": rows})
    if rows:
        write_csv(out / "results.csv", rows, list(rows[0]))


def run(scale: str, out: Path, progress: bool = True, grid: list | None = None,
        dataset: Dataset | None = None) -> dict:
    """Train every configuration of the scale's grid (resuming finished or interrupted ones)."""
    sizes = SCALES[check_scale(scale)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    ds = smoothed_corpus(dataset if dataset is not None else load_dataset("20newsgroups"), sizes["documents"])
    saturated = {s: saturated_distortion(ds.split(s)).double().mean().item() for s in ("train", "test")}
    rows = []
    for encoder, bits, depth in grid or sizes["grid"]:
        name = f"{encoder}-b{bits}-d{depth}"
        config = config_for(encoder, bits, depth, sizes["epochs"], sizes["refine_epochs"],
                            sizes["refine_passes"], len(ds.train))
        path = out / "runs" / name
        train(config, path, resume=(path / "config.json").exists(), progress=progress, dataset=ds)
        row = {"encoder": encoder, "bits": bits, "depth": depth, **measure_run(path, ds, saturated),
               "published_test": PUBLISHED_TEST.get((encoder, bits, depth)),
               "published_train": PUBLISHED_TRAIN.get((encoder, bits, depth)), "run_dir": str(path)}
        rows.append(row)
        write_rows(out, rows)
        (out / "tables.md").write_text(format_tables(rows, _epochs_note(sizes)) + "\n")
        if progress:
            print(f"{name}: test -ELBO {row['test_neg_elbo_min']:.1f} "
                  f"(epoch {row['test_neg_elbo_min_epoch']}, published {row['published_test']}), "
                  f"P@100 {row['precision_at_100']:.3f}", flush=True)
    tables = format_tables(rows, _epochs_note(sizes))
    best = min(rows, key=lambda r: r["test_neg_elbo_min"])
    result = {"scale": scale, "configurations": len(rows),
              "epochs": sizes["epochs"] + sizes["refine_epochs"],
              "saturated_distortion": saturated, "wall_seconds": time.monotonic() - started,
              "best": {k: best[k] for k in ("encoder", "bits", "depth", "test_neg_elbo_min",
                                            "precision_at_100")},
              "published_best": 387}
    write_json(out / "summary.json", {**result, "rows": rows})
    if progress:
        print(tables)
    return result

