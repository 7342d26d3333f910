"""The VAE runs' callbacks on the one loop (rdvae.engine.callbacks): the plateau rule, the trackers
(metrics.jsonl and --log), and the effective beta of a calibrated Gaussian decoder."""

from __future__ import annotations

from ..components.gaussian_decoders import GaussianDecoder, effective_beta
from ..device import seeded
from ..engine import Callback
from ..rundir import RunDir
from .config import TrainConfig
from .schedules import plateau_improvement

# the plateau criterion's state: the step the 'plateau' schedule's decay began at, why training stops
# early, whether the plateau was reached, the improvement it measured
PLATEAU_STATE = {"decay_from": None, "stop_reason": None, "converged": None, "plateau_gain": None}


class Plateau(Callback):
    """TrainConfig.plateau_epochs: after each epoch, the validation objective of the epochs after KL
    annealing (metrics.jsonl) is tested for a plateau. Under lr_schedule 'plateau' a plateau, or
    reaching decay_epochs before the cap, starts the decay (the plan's lr factor follows decay_from);
    under another schedule a plateau stops training. summary.json gets converged, plateau_gain and
    stop_reason."""

    name = "plateau"

    def __init__(self, config: TrainConfig, steps_per_epoch: int):
        self.config, self.steps_per_epoch = config, steps_per_epoch
        self.state = dict(PLATEAU_STATE)

    @property
    def decay_from(self) -> int | None:
        return self.state["decay_from"]

    def on_epoch_end(self, loop, record: dict) -> None:
        config, state, epoch = self.config, self.state, loop.counters["epoch"]
        if config.plateau_epochs == 0 or state["decay_from"] is not None or state["stop_reason"]:
            return
        values = [m["objective"] for m in loop.run.read_metrics()
                  if m["step"] > config.kl_anneal_steps and "objective" in m]
        gain = plateau_improvement(values, config.plateau_epochs)
        reached = gain is not None and gain < config.plateau_nats
        state["plateau_gain"] = gain
        if config.lr_schedule == "plateau":
            if reached or epoch >= config.epochs - config.decay_epochs:
                state.update(decay_from=loop.counters["step"], converged=reached)
                if config.decay_epochs == 0:
                    state["stop_reason"] = "plateau" if reached else "cap"
        elif reached:
            state.update(stop_reason="plateau", converged=True)

    def stops(self, loop) -> bool:
        state = self.state
        if state["stop_reason"]:
            return True
        return state["decay_from"] is not None and (
            loop.counters["step"] >= state["decay_from"] + self.config.decay_epochs * self.steps_per_epoch)

    def on_fit_end(self, loop, summary: dict) -> None:
        if self.config.plateau_epochs:
            converged = bool(self.state["converged"])
            summary.update(converged=converged, plateau_gain=self.state["plateau_gain"],
                           stop_reason="plateau" if converged else "cap")

    def state_dict(self) -> dict:
        return dict(self.state)

    def load_state_dict(self, state: dict) -> None:
        self.state = {**PLATEAU_STATE, **{k: v for k, v in state.items() if k in PLATEAU_STATE}}

    def load_legacy_counters(self, counters: dict) -> None:
        """A checkpoint of rdvae <= 0.1 kept this state among the trainer's counters."""
        self.load_state_dict(counters)


class EffectiveBeta(Callback):
    """A calibrated Gaussian decoder's effective beta, 2 beta sigma^2 (rdvae.components.gaussian_decoders):
    in the trackers' epoch figures (seeded apart from the training's draws) and in summary.json. Only
    for beta objectives (no target rate)."""

    name = "effective_beta"

    def __init__(self, config: TrainConfig, plan, tracked: bool):
        self.config, self.plan, self.tracked = config, plan, tracked

    @staticmethod
    def applies(model, config: TrainConfig) -> bool:
        return isinstance(model.decoder, GaussianDecoder) and config.target_rate is None

    def on_validation(self, loop, record: dict) -> None:
        if self.tracked:
            with seeded(self.config.seed, loop.device):
                record["effective_beta"] = effective_beta(self.plan.model, self.plan.eval_x, self.config.beta)

    def on_fit_end(self, loop, summary: dict) -> None:
        summary["effective_beta"] = effective_beta(self.plan.model, self.plan.final_x, self.config.beta)


class Trackers(Callback):
    """metrics.jsonl and the config's trackers (rdvae.tracking, imported only when some are named):
    the epoch records, the training figures every log_every_steps steps, figures every
    log_figures_every epochs, and the trackers' finish."""

    name = "trackers"

    def __init__(self, run: RunDir, config: TrainConfig, plan):
        self.config, self.plan = config, plan
        if config.log:
            from ..tracking import Tracking

            self.tracking = Tracking(run, config)
        else:
            self.tracking = _JsonlOnly(run)
        if self.tracking.every_step:   # an idle tracker adds nothing to a step
            self.on_step = self._log_step

    @property
    def active(self) -> bool:
        return self.tracking.active

    def on_fit_start(self, loop) -> None:
        self.tracking.start(self.config.to_dict(), loop.counters["step"])

    def _log_step(self, loop, figures) -> None:
        step = loop.counters["step"]
        if step % self.config.log_every_steps == 0:
            *values, taken = figures.tolist()
            if taken:
                named = dict(zip(loop.figure_names, values, strict=True))
                self.tracking.log_step(step, {f"train/{k}": named[k] for k in ("loss", "rate", "distortion")})

    def on_epoch_end(self, loop, record: dict) -> None:
        step, epoch = loop.counters["step"], loop.counters["epoch"]
        self.tracking.log_epoch(step, record)
        if self.tracking.figures_due(epoch) and len(self.plan.dataset.event_shape) == 3:
            self.tracking.log_figures(step, self.plan.model, self.plan.eval_x, self.config.seed)

    def on_fit_end(self, loop, summary: dict) -> None:
        if self.config.log:   # a kill before the trackers' finish is done is then repaired by --resume
            self.tracking.finish_pending(loop.counters["step"])

    def on_summary(self, loop, summary: dict) -> None:
        self.tracking.finish({**summary, "step": loop.counters["step"]})

    def on_exception(self, loop, error: BaseException, summary: dict | None) -> None:
        if summary is not None:   # diverged: recorded, the trackers' runs finish with it
            self.tracking.finish(summary)
        else:                     # interrupted: the trackers' runs stay open, a resume continues them
            self.tracking.close(timeout=5.0)


class _JsonlOnly:
    """Tracking without trackers: metrics.jsonl alone."""
    active = every_step = False

    def __init__(self, run: RunDir):
        self.run = run

    def start(self, config: dict, step: int) -> None:
        pass

    def log_epoch(self, step: int, record: dict) -> None:
        self.run.append_metrics(record)

    def figures_due(self, epoch: int) -> bool:
        return False

    def finish(self, summary: dict) -> None:
        pass

    def close(self, timeout: float = 0) -> None:
        pass
