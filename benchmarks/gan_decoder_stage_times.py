"""Timed short runs of each cpu-scale stage of the gan-decoder study, to plan the real stages:
100 GAN steps and its FID guard, 200 steps of stage 1 and of stage 2 with one validation, and the
scoring (one FID resample of 10 000 draws, the ELBO of 10 000 draws). Prints the seconds as JSON.

    OMP_NUM_THREADS=1 RDVAE_DATA=/work/shared/data python benchmarks/gan_decoder_stage_times.py \\
        --dataset mnist --out /tmp/gan-times
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from rdvae.device import set_threads
from rdvae.engine import FitOptions, Loop
from rdvae.studies.gan_decoder import study
from rdvae.studies.gan_decoder.adversarial import GANPlan, fid_features
from rdvae.studies.gan_decoder.dcgan import dcgan
from rdvae.studies.gan_decoder.fids import stage_fids
from rdvae.studies.gan_decoder.ground_truth import GroundTruth, stage_model
from rdvae.studies.gan_decoder.stages import StageConfig, held_out_figures, train_stage


class Stop(Exception):
    """Ends the timed GAN steps."""


def seconds(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--out", required=True, help="a scratch folder for the stage runs")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    scale = study.SCALES["cpu"]
    found = {"threads": args.threads, "dataset": args.dataset}

    gan_config = study.gan_config(args.dataset, scale, None)
    plan = GANPlan(gan_config, progress=False)   # trains or loads the FID classifier
    features, _ = fid_features(gan_config, progress=False)
    started = {}

    def hook(counters):
        if counters["step"] == 10:
            started["at"] = time.monotonic()
        if counters["step"] == 110:
            raise Stop

    try:
        Loop(plan, None, FitOptions(epochs=1, seed=0, device="cpu", progress=False), [], on_step=hook).fit()
    except Stop:
        found["gan_step_s"] = (time.monotonic() - started["at"]) / 100
    found["gan_steps_per_epoch"] = plan.steps_per_epoch()
    loop = type("Loop", (), {"counters": {"epoch": 1, "skipped": 0, "train_seconds": 0}})()
    found["gan_validation_s"] = seconds(lambda: plan.validate(loop, {}))

    torch.manual_seed(0)
    truth = GroundTruth(dcgan((1, 32, 32), 100, 32, 32).generator, study.SIGMA)
    for stage in ("stage1-encoder", "stage2-joint"):
        config = study.stage_config(stage, truth, scale)
        config = StageConfig(**{**config.to_dict(), "max_steps": 200, "epoch_steps": 200, "plateau_epochs": 0,
                                "device": "cpu"})
        start = stage_model(truth, 32, 32)
        began = time.monotonic()
        train_stage(config, f"{args.out}/{stage}", truth, start, progress=False)
        found[f"{stage}_wall_200_steps_s"] = time.monotonic() - began
        for name, n in (("validation_2000_s", 2000), ("elbo_10000_s", 10_000)):
            draws = truth.draw(n, seed=1)
            began = time.monotonic()
            held_out_figures(start, draws, seed=0)
            found[name] = time.monotonic() - began
        began = time.monotonic()
        stage_fids(features, truth, start, 10_000, 1, 100)
        found["fid_one_resample_10000_s"] = time.monotonic() - began
    print(json.dumps(found, indent=1))
    return found


if __name__ == "__main__":
    main()
