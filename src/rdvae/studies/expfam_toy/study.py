"""The Gaussian-mixture toy of "VAE Approximation Error: ELBO and Exponential Families"
(Shekhovtsov, Schlesinger & Flach, ICLR 2022), as set up by its reproduction ([Re], sec. 3).

Ground truth: z uniform over 4 one-hot states, x | z ~ N(theta z, I) in 2-D with centres
(1,1), (1,-1), (0,0), (-1,0); 8000 points (2000 per component, seed 0). Two encoders:

- factorized: e(z|x) ~ exp <g(x), z_b>, g an MLP 2-64-64-2, z_b the two bits of state z;
- consistent: softmax(Linear(2 -> 4)), the exact posterior family of this model.

Expectations over z are exact (all 4 states). Stage 1: 10 000 full-batch Adam steps (lr 1e-3)
on the encoder with the decoder frozen at the truth; stage 2: 10 000 joint steps (lr 1e-3 by default,
as the [Re] text says; its code, scripts/train_gmm.py, uses 1e-4 there: `joint_lr`). Reported
after each stage: ELBO, exact log-likelihood, the gap KL(e(z|x) || p(z|x)) and the centres' drift.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from rdvae.components import GaussianDecoder
from rdvae.components.discrete import (
    CategoricalEncoder,
    CategoricalMarginal,
    FactorizedBitsEncoder,
    IdentityTrunk,
)
from rdvae.engine import Callback, FitOptions, Plan, Step, fit
from rdvae.engine.optimizers import build_optimizer
from rdvae.errors import ConfigError
from rdvae.estimators import DiscreteVAE
from rdvae.rundir import write_json

from ..common import check_scale, markdown_table

NAME = "expfam-toy"
DESCRIPTION = "Gaussian-mixture toy: factorized 2-bit vs consistent 4-way encoder, exact ELBO ([Re] sec. 3)"

CENTRES = ((1.0, 1.0), (1.0, -1.0), (0.0, 0.0), (-1.0, 0.0))
ENCODERS = ("factorized", "consistent")
SCALES = {
    "smoke": {"points": 400, "encoder_steps": 150, "joint_steps": 150},
    "cpu": {"points": 8000, "encoder_steps": 10_000, "joint_steps": 10_000},
    "paper": {"points": 8000, "encoder_steps": 10_000, "joint_steps": 10_000},
}
PUBLISHED = {"[Re] (centres above, variance 1)": (-3.37, -3.31), "original paper": (-3.74, -3.70)}
SEED = 0
LR = 1e-3


def sample_mixture(points: int, seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """points/4 draws from each component: x [N, 2] and the component of each point [N]."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor(CENTRES)
    component = torch.arange(4).repeat_interleave(points // 4)
    return centres[component] + torch.randn(len(component), 2, generator=g), component


class _MLPTrunk(nn.Module):
    """2-64-64 with ReLU: g(x) is a Linear(64, 2) on top (the encoder's head)."""

    out_features = 64

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())

    def forward(self, x):
        return self.net(x)


def build_toy_model(encoder: str, seed: int = SEED) -> DiscreteVAE:
    """The ground-truth decoder N(theta z, I) with its centres, a uniform m(z) and the encoder."""
    torch.manual_seed(seed)
    trunk = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        trunk.weight.copy_(torch.tensor(CENTRES).T)
    decoder = GaussianDecoder(trunk, (2,), scale=1.0)
    if encoder == "factorized":
        enc = FactorizedBitsEncoder(_MLPTrunk(), bits=2)
    elif encoder == "consistent":
        enc = CategoricalEncoder(IdentityTrunk(2), states=4)
    else:
        raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
    return DiscreteVAE(enc, decoder, CategoricalMarginal(4), estimator="exact")


def centres_of(model: DiscreteVAE) -> torch.Tensor:
    return model.decoder.trunk.weight.detach().T.clone()  # [4, 2]


@torch.no_grad()
def measure(model: DiscreteVAE, x: torch.Tensor) -> dict:
    """Mean ELBO, exact log-likelihood and their gap (nats per point), centres and drift."""
    out = model(x)
    log_px = model.exact_log_likelihood(x)
    centres = centres_of(model)
    drift = (centres - torch.tensor(CENTRES)).norm(dim=1)
    return {"elbo": out.elbo.mean().item(), "log_likelihood": log_px.mean().item(),
            "kl_gap": (log_px - out.elbo).mean().item(), "rate": out.rate.mean().item(),
            "distortion": out.distortion.mean().item(),
            "centres": centres.tolist(), "centre_drift": drift.tolist(), "max_drift": drift.max().item()}


class StagePlan(Plan):
    """One stage on the one loop (rdvae.engine): full-batch Adam on -ELBO (exact expectations over the
    4 states), the decoder frozen unless `joint`."""

    kind = "expfam-toy-stage"

    def __init__(self, model: DiscreteVAE, x: torch.Tensor, steps: int, joint: bool, desc: str = "",
                 lr: float = LR):
        self.model, self.x, self.steps, self.joint, self.desc, self.lr = model, x, steps, joint, desc, lr

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        return [build_optimizer("adam", params, self.lr, {"fused": False})]

    def steps_per_epoch(self) -> int:
        return self.steps

    def epoch_batches(self, order, shuffle, start: int):
        return (self.x for _ in range(start, self.steps))

    def training_step(self, x: torch.Tensor, step: int, index: int) -> Step:
        loss = -self.model(x).elbo.mean()
        return Step(loss, {"loss": loss})

    def summary(self, loop) -> dict:
        return {"status": "done", "kind": self.kind, "steps": self.steps, "joint": self.joint}

    def describe(self) -> str:
        return self.desc

    def state_dict(self) -> dict:
        return {"steps": self.steps, "joint": self.joint, "points": len(self.x), "lr": self.lr}

    def load_state_dict(self, state: dict) -> None:
        state = {"lr": LR, **state}   # stages saved before the learning rate was an option used LR
        if state != self.state_dict():
            raise ConfigError(f"this stage's run was trained with {state}, not {self.state_dict()}; remove "
                              "its folder to train it again")


class ELBOCurve(Callback):
    """The ELBO before every update (a host read per step: for small full-batch problems)."""

    name = "elbo_curve"

    def __init__(self):
        self.curve: list[float] = []

    def on_step(self, loop, figures) -> None:
        self.curve.append(-figures[0].item())

    def state_dict(self) -> dict:
        return {"curve": self.curve}

    def load_state_dict(self, state: dict) -> None:
        self.curve = list(state.get("curve", []))


def train_stage(model: DiscreteVAE, x: torch.Tensor, steps: int, joint: bool, desc: str,
                progress: bool, run: Path | None = None, checkpoint_minutes: float = 10.0,
                lr: float = LR) -> list[float]:
    """Full-batch Adam (learning rate lr) on -ELBO; the decoder frozen unless `joint`. Returns the ELBO
    curve. run: a folder for the checkpoints, written at the end and every checkpoint_minutes (a
    finished or interrupted stage there is resumed)."""
    for p in model.decoder.parameters():
        p.requires_grad_(joint)
    curve = ELBOCurve()
    try:
        options = FitOptions(epochs=1, seed=SEED, progress=progress, checkpoint_minutes=checkpoint_minutes)
        fit(StagePlan(model, x, steps, joint, desc, lr), run, options, [curve], resume=run is not None)
    finally:
        for p in model.decoder.parameters():
            p.requires_grad_(True)
    return curve.curve


PALETTE = ((0.84, 0.15, 0.16), (0.12, 0.47, 0.71), (0.17, 0.63, 0.17), (1.0, 0.5, 0.05))


@torch.no_grad()
def posterior_colours(probabilities: torch.Tensor) -> torch.Tensor:
    """Each point's colour: its most probable component's colour, faded towards grey as the
    posterior becomes uncertain (max probability 1: full colour; 1/4: grey). [N, 4] -> RGB [N, 3]."""
    palette = torch.tensor(PALETTE)
    top, index = probabilities.max(dim=1)
    certainty = ((top - 0.25) / 0.75).clamp(0, 1).unsqueeze(1)
    return certainty * palette[index] + (1 - certainty) * torch.full((1, 3), 0.8)


def plot_figure(x: torch.Tensor, panels: dict, path: Path) -> None:
    """Rows: encoders; columns: true posterior, after stage 1, after joint training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    titles = ["(a) true posterior p(z|x)", "(b) e(z|x) after stage 1 (decoder frozen)",
              "(c) e(z|x) after joint training"]
    fig, axes = plt.subplots(len(panels), 3, figsize=(12, 4.1 * len(panels)), sharex=True, sharey=True)
    axes = axes.reshape(len(panels), 3)
    true_centres = torch.tensor(CENTRES)
    for row, (encoder, cols) in enumerate(panels.items()):
        for col, (probs, centres, label) in enumerate(cols):
            ax = axes[row, col]
            ax.scatter(x[:, 0], x[:, 1], c=posterior_colours(probs).numpy(), s=3, alpha=0.8, linewidths=0,
                       rasterized=True)
            for k in range(4):
                ax.plot(*centres[k].tolist(), marker="o", markerfacecolor=PALETTE[k], markeredgecolor="k",
                        markersize=9, mew=1.5)
                ax.plot(*true_centres[k].tolist(), marker="x", color="k", markersize=7, mew=1.5)
            ax.set_title(f"{titles[col]}\n{label}", fontsize=9)
            ax.set_aspect("equal")
            ax.set_xlim(-3.5, 3.5)
            ax.set_ylim(-3.5, 3.5)
            ax.grid(alpha=0.25)
            if col == 0:
                ax.set_ylabel(f"{encoder} encoder\n$x_2$", fontsize=10)
            if row == len(panels) - 1:
                ax.set_xlabel("$x_1$")
    handles = [Line2D([], [], marker="x", color="k", linestyle="", markersize=8, mew=2, label="true centre")]
    handles += [Line2D([], [], marker="o", markerfacecolor=c, markeredgecolor="k", linestyle="", markersize=8,
                       label=f"decoder centre {k + 1} {CENTRES[k]}") for k, c in enumerate(PALETTE)]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle("Gaussian-mixture toy: each point coloured by its most probable component "
                 "(faded where the posterior is uncertain)", fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=150)
    plt.close(fig)


def format_table(results: dict) -> str:
    """Each encoder's stages (ELBO, exact log-likelihood, their gap, the centres' drift), then the
    published ELBOs."""
    rows = []
    for encoder, stages in results.items():
        for stage in ("initial", "encoder_only", "joint"):
            m = stages[stage]
            rows.append([encoder, stage, f"{m['elbo']:.4f}", f"{m['log_likelihood']:.4f}",
                         f"{m['kl_gap']:.4f}", f"{m['max_drift']:.3f}"])
    header = ["encoder", "stage", "ELBO", "exact log p(x)", "KL gap", "max centre drift"]
    lines = [markdown_table(header, rows), ""]
    for source, (a, b) in PUBLISHED.items():
        lines.append(f"published ELBO, factorized encoder ({source}): {a} -> {b}")
    return "\n".join(lines)


def run(scale: str, out: Path, progress: bool = True, joint_lr: float = LR) -> dict:
    """Both encoders, stage 1 (lr LR) then joint training (lr joint_lr: LR as the [Re] text says, 1e-4 in
    its code)."""
    sizes = SCALES[check_scale(scale)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    x, _ = sample_mixture(sizes["points"])
    results, panels = {}, {}
    for encoder in ENCODERS:
        model = build_toy_model(encoder)
        true_posterior = model.exact_posterior(x).T  # the decoder is still the ground truth
        stages = {"initial": measure(model, x)}
        curves = {"encoder_only": train_stage(model, x, sizes["encoder_steps"], False,
                                              f"{encoder}: encoder only", progress,
                                              out / "stage-runs" / f"{encoder}-encoder-only")}
        stages["encoder_only"] = measure(model, x)
        with torch.no_grad():
            q_stage1 = model.encoder(x).probs
        centres_stage1 = centres_of(model)
        curves["joint"] = train_stage(model, x, sizes["joint_steps"], True, f"{encoder}: joint", progress,
                                      out / "stage-runs" / f"{encoder}-joint", lr=joint_lr)
        stages["joint"] = measure(model, x)
        with torch.no_grad():
            q_joint = model.encoder(x).probs
        stages["curves_every_100"] = {k: v[::100] for k, v in curves.items()}
        results[encoder] = stages
        panels[encoder] = [
            (true_posterior, torch.tensor(CENTRES), "ground-truth decoder, Bayes rule"),
            (q_stage1, centres_stage1, f"ELBO {stages['encoder_only']['elbo']:.3f}"),
            (q_joint, centres_of(model), f"ELBO {stages['joint']['elbo']:.3f}, "
                                         f"log p(x) {stages['joint']['log_likelihood']:.3f}"),
        ]
    plot_figure(x, panels, out / "fig1_posteriors.png")
    table = format_table({k: {s: v[s] for s in ("initial", "encoder_only", "joint")}
                          for k, v in results.items()})
    (out / "table.md").write_text(table + "\n")
    summary = {
        "scale": scale, "points": sizes["points"], "encoder_steps": sizes["encoder_steps"],
        "joint_steps": sizes["joint_steps"], "lr": LR, "joint_lr": joint_lr, "seed": SEED, "centres": CENTRES,
        "results": results, "published_elbo": {k: list(v) for k, v in PUBLISHED.items()},
        "wall_seconds": time.monotonic() - started, "figure": str(out / "fig1_posteriors.png"),
    }
    write_json(out / "results.json", summary)
    if progress:
        print(table)
    return {"scale": scale, "joint_lr": joint_lr, "wall_seconds": summary["wall_seconds"],
            **{f"{e}_{s}_{k}": results[e][s][k] for e in ENCODERS for s in ("encoder_only", "joint")
               for k in ("elbo", "log_likelihood", "kl_gap", "max_drift")}}
