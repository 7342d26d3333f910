"""The two-cluster toy of "Fixing a Broken ELBO" (section 4, appendix E, fig. 2): training
with exact expectations and the figure. The model and its exact R, D live in two_cluster (beside
this module); this module only optimises and draws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rdvae.engine import FitOptions, Plan, Step, fit
from rdvae.errors import ConfigError
from rdvae.objectives import BetaObjective, TargetRateObjective

from .two_cluster import BINS, DiscreteToyModel, TwoClusterData, optimal_model_summary, two_cluster_data

# The paper reports R = 0.0002 (ELBO) and R = 0.4999 (target rate 0.5), two clusters 70/30.
PAPER = {"elbo": {"rate": 0.0002}, "target_rate": {"rate": 0.4999, "cluster_masses": [0.7, 0.3]}}
CLASS_COLOURS = ("#6a3d9a", "#e6b400")  # class 0 purple, class 1 yellow, as in fig. 2


# per reading of the model (DiscreteToyModel.form): optimiser and initialisation, the same
# for both objectives. "mixed" (the reading under which all of appendix E holds; the main
# result): a near-uninformative start, the decoder table learning fast, the encoder and the
# marginal slowly (a fast marginal lets D + |0.5 - R| raise R through KL(q || m) instead of
# through information). Tables: near-zero start, decoder and marginal 10x faster than the
# encoder. Scalars: small start, one learning rate.
TOY_SETTINGS = {"mixed": dict(decoder_lr=0.1, marginal_lr=0.003, encoder_lr=0.003, init_scale=0.01),
                "table": dict(decoder_lr=0.1, encoder_lr=0.01, init_scale=0.01),
                "scalar": dict(decoder_lr=0.03, encoder_lr=0.03, init_scale=0.1)}
MAIN_FORM = "mixed"


class ToyPlan(Plan):
    """The toy on the one loop (rdvae.engine): each step one update of Adam on the exact objective
    (no batches: the expectations are sums over the 30 bins), its learning rate constant for the
    first half of the steps, then linearly to 0 (the paper's schedule shape)."""

    kind = "two-cluster-toy"
    shown = ("rate", "distortion")

    def __init__(self, data: TwoClusterData, target_rate: float | None, steps: int, seed: int = 0,
                 decoder_lr: float = 0.1, encoder_lr: float = 0.01, init_scale: float = 0.01,
                 form: str = "table", marginal_lr: float | None = None):
        self.data, self.steps = data, steps
        self.settings = {"target_rate": target_rate, "steps": steps, "seed": seed, "decoder_lr": decoder_lr,
                         "encoder_lr": encoder_lr, "init_scale": init_scale, "form": form,
                         "marginal_lr": marginal_lr}
        self.model = DiscreteToyModel(init_scale=init_scale, generator=torch.Generator().manual_seed(seed),
                                      form=form)
        self.objective = BetaObjective(1.0) if target_rate is None else TargetRateObjective(target_rate)
        self.lrs = {"decoder": decoder_lr, "marginal": decoder_lr if marginal_lr is None else marginal_lr,
                    "encoder": encoder_lr}

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        model = self.model
        return [torch.optim.Adam([
            {"params": [model.decoder_w, model.decoder_b], "lr": self.lrs["decoder"]},
            {"params": [model.marginal_logits], "lr": self.lrs["marginal"]},
            {"params": [model.encoder_w, model.encoder_b], "lr": self.lrs["encoder"]},
        ])]

    def steps_per_epoch(self) -> int:
        return self.steps

    def epoch_batches(self, order, shuffle, start: int):
        return (None for _ in range(start, self.steps))

    def training_step(self, batch, step: int, index: int) -> Step:
        rate, distortion = self.model.rate_distortion(self.data.p_x)
        loss = self.objective.loss(rate.reshape(1), distortion.reshape(1), step)
        return Step(loss, {"loss": loss, "rate": rate, "distortion": distortion})

    def lr_factor(self, step: int) -> float:
        half = self.steps // 2
        return 1.0 if step < half else max(0.0, (self.steps - step) / max(1, self.steps - half))

    def summary(self, loop) -> dict:
        return {"status": "done", "kind": self.kind, **self.settings, **self.model.summary(self.data)}

    def describe(self) -> str:
        target = self.settings["target_rate"]
        return f"toy, {'ELBO' if target is None else f'target rate {target:g}'}, {self.settings['form']}"

    def state_dict(self) -> dict:
        return {"settings": self.settings}

    def load_state_dict(self, state: dict) -> None:
        if state.get("settings") != self.settings:
            raise ConfigError(f"this toy run was trained with {state.get('settings')}, not {self.settings}; "
                              "remove its folder to train it again")


def train_toy(data: TwoClusterData, target_rate: float | None, steps: int, seed: int = 0,
              decoder_lr: float = 0.1, encoder_lr: float = 0.01, init_scale: float = 0.01,
              form: str = "table", progress: bool = False, marginal_lr: float | None = None,
              run: Path | None = None, checkpoint_minutes: float = 10.0) -> DiscreteToyModel:
    """Adam on the exact objective (beta = 1, i.e. the ELBO, or D + |target - R|), learning
    rate constant for half the steps, then linearly to 0 (ToyPlan).

    The tables start near zero (an uninformative encoder, near-uniform decoders) and the
    decoder and marginal learn faster than the encoder, as powerful decoders do; both
    objectives are trained from the same start with the same optimiser. run: a folder for the
    checkpoints, written at the end and every checkpoint_minutes (a finished or interrupted run there
    is resumed; None: nothing written).
    """
    plan = ToyPlan(data, target_rate, steps, seed, decoder_lr, encoder_lr, init_scale, form, marginal_lr)
    fit(plan, run, FitOptions(epochs=1, seed=seed, progress=progress, checkpoint_minutes=checkpoint_minutes),
        resume=run is not None)
    return plan.model


def run_toy(out: Path, steps: int, target_rate: float = 0.5, seed: int = 0, progress: bool = True,
            forms=("mixed", "table", "scalar"), seeds: int = 1) -> dict:
    """Both objectives for each reading of the model; results[form][objective] and a figure
    per form (out/toy_fig2_<form>.png). With seeds > 1 the main reading (MAIN_FORM) is also
    trained from `seeds` initialisations (seed, seed + 1, ...): results["seeds"]."""
    data = two_cluster_data(0.5)
    results = {
        "data": {"sigma": data.sigma, "centres": list(data.centres), "class_probs": [0.7, 0.3],
                 "bins": BINS, "mutual_information": data.mutual_information, "entropy": data.entropy,
                 "p_x": data.p_x.tolist(), "joint": data.joint.tolist()},
        "optimal": optimal_model_summary(data),
        "steps": steps,
        "seed": seed,
    }

    objectives = (("elbo", None), ("target_rate", target_rate))

    def trained(form: str, at_seed: int) -> dict:
        """Both objectives from the same initialisation."""
        found = {}
        for key, target in objectives:
            model = train_toy(data, target, steps, at_seed, form=form, progress=progress,
                              run=out / "toy-runs" / f"{form}-{key}-seed{at_seed}",
                              **TOY_SETTINGS[form])
            found[key] = {"target_rate": target, **model.summary(data),
                          "encoder": model.encoder().exp().tolist()}
        return found

    for form in forms:
        results[form] = trained(form, seed)
        figure_toy(results, form, out / f"toy_fig2_{form}")
    if seeds > 1 and MAIN_FORM in forms:
        keep = ("rate", "distortion", "elbo", "cluster_masses", "class_agreement")
        results["seeds"] = []
        for k in range(seeds):
            runs = results[MAIN_FORM] if k == 0 else trained(MAIN_FORM, seed + k)
            results["seeds"].append({"seed": seed + k, **{key: {f: runs[key][f] for f in keep}
                                                          for key, _ in objectives}})
    return results


def figure_toy(results: dict, form: str, path_stem: Path) -> list[Path]:
    """Fig. 2 in spirit: columns optimal / ELBO / target rate; rows (i) p*(x) against the
    model's p(x) = sum_z m(z) d(x|z), (ii) the aggregate posterior q(z) split by the true
    class, (iii) the encoder e(z|x) as an image."""
    from rdvae.plots.style import new_figure, save_figure, styled

    data = results["data"]
    p_x = np.array(data["p_x"])
    joint = np.array(data["joint"])
    trained = results[form]
    columns = [("(a) optimal (true process)", results["optimal"]),
               ("(b) ELBO", trained["elbo"]),
               (f"(c) target rate {trained['target_rate']['target_rate']:g}", trained["target_rate"])]
    with styled():
        fig = new_figure(10, 7.5)
        _draw_toy(fig, columns, p_x, joint)
        fig.suptitle(f"Two-cluster toy, '{form}' model: I(x; z*) = {data['mutual_information']:.3f} nats, "
                     f"H(x) = {data['entropy']:.3f} nats, sigma = {data['sigma']:.4f}", fontsize=10)
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, path_stem)


def _draw_toy(fig, columns, p_x, joint) -> None:
    axes = fig.subplots(3, 3)
    bins = np.arange(BINS)
    for col, (title, res) in enumerate(columns):
        ax = axes[0, col]
        ax.bar(bins, p_x, color="#bbbbbb", width=0.9, label=r"$p^*(x)$")
        ax.plot(bins, res["model_p_x"], "k.-", lw=1, ms=4, label=r"model $\sum_z m(z)\,d(x|z)$")
        ax.set_title(f"{title}\nR = {res['rate']:.4f}, D = {res['distortion']:.4f} nats", fontsize=9)
        ax.set_xlabel("x (bin)", fontsize=8)
        if col == 0:
            ax.set_ylabel("(i) probability", fontsize=8)
            ax.legend(fontsize=7, frameon=False)
        ax = axes[1, col]
        by_class = np.array(res["aggregate_posterior_by_class"])
        states = np.arange(by_class.shape[1])
        ax.bar(states, by_class[0], color=CLASS_COLOURS[0], width=0.9, label="true class 0 (70%)")
        ax.bar(states, by_class[1], bottom=by_class[0], color=CLASS_COLOURS[1], width=0.9,
               label="true class 1 (30%)")
        if len(states) <= 2:
            ax.set_xticks(states)
        masses = ", ".join(f"{m:.0%}" for m in res["cluster_masses"])
        ax.set_title(f"q(z) by true class; clusters {masses}", fontsize=9)
        ax.set_xlabel("z (state)", fontsize=8)
        if col == 0:
            ax.set_ylabel("(ii) q(z)", fontsize=8)
            ax.legend(fontsize=7, frameon=False)
        ax = axes[2, col]
        if "encoder" in res:
            image = np.array(res["encoder"])
        else:  # the optimal model: e(z|x) = p*(z*|x), two states
            image = joint / joint.sum(0, keepdims=True)
        top = float(image.max())
        ax.imshow(image, aspect="auto", origin="lower", cmap="Greys", vmin=0, vmax=top,
                  interpolation="nearest")
        if len(image) <= 2:
            ax.set_yticks(range(len(image)))
        ax.set_xlabel("x (bin)", fontsize=8)
        ax.set_title(f"encoder e(z|x) (black = {top:.2f})", fontsize=9)
        if col == 0:
            ax.set_ylabel("(iii) z (state)", fontsize=8)
    for ax in axes.flat:
        ax.tick_params(labelsize=7)
