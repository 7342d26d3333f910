"""Your own encoder, decoder and marginal, trained and judged beside rdvae's `mlp` preset.

Shows the model contract with plain torch code (no rdvae building blocks): the encoder maps
x [B, 1, 8, 8] to e(z|x), a diagonal Gaussian with batch [B] and event [d]; the decoder maps
z [N, d] to d(x|z), independent Bernoullis with batch [N] and event (1, 8, 8); the marginal m(z)
is a learned diagonal Gaussian (an rdvae.components.Marginal). The file registers them and a
family `own-mlp`, trains it and the built-in `mlp` at the same settings on the bundled digits
(dynamic binarization), measures both (IW-NLL with k = 100, I_q, ELBO surgery), prints a table
and writes the rate-distortion plane with both models to OUT/rd_plane.png. About 10 s on one
CPU core:

    python examples/own_model.py --out runs/own-model

The run records this file as its plugin (config.json, with its SHA-256). A run folder never runs code
unasked, so later commands name the file again (and refuse it if it changed since the run was trained):

    rdvae eval runs/own-model/own --plugin examples/own_model.py --iw-samples 1000

The same file works as a plugin on its own: `rdvae train --plugin examples/own_model.py
--family own-mlp --binarize dynamic --out runs/own`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

from rdvae import register_decoder, register_encoder, register_family, register_marginal
from rdvae.components import Marginal


# ---------------------------------------------------------------------------------------- the model
class Encoder(nn.Module):
    """x [B, *event_shape] -> e(z|x) = N(mu(x), diag(sigma(x)^2)): batch [B], event [d]."""

    def __init__(self, event_shape, latent_dim, width):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(event_shape), width), nn.Softplus(),
                                 nn.Linear(width, 2 * latent_dim))

    def forward(self, x):
        loc, log_scale = self.net(x).chunk(2, dim=-1)
        return Independent(Normal(loc, log_scale.exp()), 1)


class Decoder(nn.Module):
    """z [N, d] -> d(x|z) = independent Bernoullis: batch [N], event event_shape."""

    def __init__(self, event_shape, latent_dim, width):
        super().__init__()
        self.event_shape = tuple(event_shape)
        self.net = nn.Sequential(nn.Linear(latent_dim, width), nn.Softplus(),
                                 nn.Linear(width, math.prod(event_shape)))

    def forward(self, z):
        logits = self.net(z).view(-1, *self.event_shape)
        return Independent(Bernoulli(logits=logits), len(self.event_shape))


class LearnedGaussian(Marginal):
    """m(z) = N(mu, diag(sigma^2)) with learned mu and sigma: event [d]."""

    def __init__(self, latent_dim):
        super().__init__()
        self.latent_dim = latent_dim
        self.loc = nn.Parameter(torch.zeros(latent_dim))
        self.log_scale = nn.Parameter(torch.zeros(latent_dim))

    def forward(self, encoder):  # the encoder is passed for marginals built from it (VampPrior)
        return Independent(Normal(self.loc, self.log_scale.exp()), 1)


# ---------------------------------------------------------------------------------------- the plugin
# Builders take (event_shape, latent_dim) and options (`--set model.width=128` reaches `width`).
# Running this file as a script and naming it as the runs' plugin is fine: rdvae sees that the file is
# already imported (as __main__) and does not run it twice.
@register_encoder("own-mlp")
def own_encoder(event_shape, latent_dim, width=256):
    return Encoder(event_shape, latent_dim, width)


@register_decoder("own-mlp")
def own_decoder(event_shape, latent_dim, width=256):
    return Decoder(event_shape, latent_dim, width)


@register_marginal("learned-gaussian")
def learned_gaussian(event_shape, latent_dim):
    return LearnedGaussian(latent_dim)


register_family("own-mlp", encoder="own-mlp", decoder="own-mlp", marginal="learned-gaussian", latent_dim=8,
                description="examples/own_model.py: MLP encoder and decoder, learned Gaussian m(z)")


# ---------------------------------------------------------------------------------------- the script
COLUMNS = [("R", "rate"), ("D", "distortion"), ("-ELBO", "neg_elbo"), ("IW-NLL", "iw_nll"),
           ("I_q", "mutual_info"), ("avg KL", "surgery_avg_kl"), ("MI(n;z)", "surgery_index_code_mi"),
           ("KL(q||m)", "surgery_marginal_kl"), ("TC", "surgery_total_correlation"),
           ("dim KL", "surgery_dimension_kl")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/own-model")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--iw-samples", type=int, default=100)
    args = parser.parse_args()

    # imported here, not at the top: rdvae imports this file as a plugin too, and needs none of these
    from rdvae.evaluate import elbo_surgery, evaluate_model
    from rdvae.plots import plot_rd_plane, save_figure
    from rdvae.train import TrainConfig, load_run, train

    out = Path(args.out)
    settings = dict(dataset="digits", binarize="dynamic", latent_dim=8, epochs=args.epochs, seed=0)
    rows = []
    for name, family in (("own", "own-mlp"), ("mlp", "mlp")):
        run_dir = out / name
        # plugins: config.json records this file and its SHA-256 (`rdvae eval --plugin` checks them);
        # resume=True: a finished run of the same config is reused when the script runs again
        plugins = [__file__] if family == "own-mlp" else []
        train(TrainConfig(family=family, plugins=plugins, **settings), run_dir, resume=True, progress=False)
        run = load_run(run_dir)                     # .model (weights loaded), .dataset, .config
        x = run.dataset.test
        row = evaluate_model(run.model, x, iw_samples=args.iw_samples)
        row.update(elbo_surgery(run.model, x).as_dict(), family=family, run_dir=str(run_dir),
                   neg_elbo=-row["elbo"], params=sum(p.numel() for p in run.model.parameters()))
        rows.append(row)

    print(f"digits test split ({len(x)} examples), {args.epochs} epochs, latent_dim 8; nats per example")
    print(f"{'model':<10}{'params':>8}" + "".join(f"{label:>10}" for label, _ in COLUMNS))
    for row in rows:
        print(f"{row['family']:<10}{row['params']:>8}"
              + "".join(f"{row[key]:>10.3f}" if row.get(key) is not None else f"{'n/a':>10}"
                        for _, key in COLUMNS))
    print("avg KL = MI(n;z) + KL(q||m) (ELBO surgery); KL(q||m) = TC + dim KL for factorized marginals")

    fig = plot_rd_plane(rows, "digits: own-mlp vs mlp")
    (figure,) = save_figure(fig, out / "rd_plane", formats=("png",))
    print(f"rate-distortion plane: {figure}")
    print(f"next: rdvae eval {out / 'own'} --plugin {Path(__file__)} --iw-samples 1000")


if __name__ == "__main__":
    main()
