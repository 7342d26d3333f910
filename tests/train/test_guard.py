"""The update guard of the one loop (rdvae.engine.Loop.step), on the VAE plan: skips decided on the
device (fused Adam's found_inf) or on the host (other optimizers) leave parameters and optimizer
state untouched, are counted, stop a run that keeps skipping, and change nothing about runs without
skips."""

import math
from dataclasses import replace

import pytest
import torch

from rdvae.engine import Loop
from rdvae.rundir import RunDir
from rdvae.train import TrainConfig, TrainingDiverged
from rdvae.train.loop import vae_loop
from rdvae.train.schedules import lr_factor

SMALL = dict(dataset="digits", binarize="dynamic", family="mlp", latent_dim=4,
             model={"hidden": [32]}, batch_size=64, eval_batch_size=500, device="cpu")


def _trainer(tmp_path, name="r", **options) -> Loop:
    config = TrainConfig(**{**SMALL, **options}).validated()
    return vae_loop(config, RunDir(tmp_path / name), progress=False)


def _batches(trainer, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = trainer.plan.train_split.source
    size = trainer.plan.config.batch_size
    return [torch.bernoulli(x[torch.randint(len(x), (size,), generator=g)], generator=g) for _ in range(n)]


def _host_guard_step(trainer, x):
    """The guard as it was before the device-side decision: clip_grad_norm_ and host checks."""
    config, counters = trainer.plan.config, trainer.counters
    for group in trainer.optimizers[0].param_groups:
        group["lr"] = config.lr * lr_factor(config.lr_schedule, counters["step"], trainer.total_steps)
    out = trainer.plan.objective(trainer.plan.model, x, counters["step"])
    trainer.optimizers[0].zero_grad(set_to_none=True)
    if not torch.isfinite(out.loss):
        return None
    out.loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(trainer.params[0], math.inf)
    if not (math.isfinite(grad_norm) and grad_norm <= config.skip_grad_norm):
        return None
    trainer.optimizers[0].step()
    return torch.stack([out.loss.detach(), out.rate.detach().mean(), out.distortion.detach().mean()])


def _state(trainer):
    params = {name: p.detach().clone() for name, p in trainer.plan.model.named_parameters()}
    states = trainer.optimizers[0].state.values()
    moments = {(i, k): v.clone() for i, s in enumerate(states) for k, v in s.items()}
    return params, moments


def _assert_same_state(a, b):
    assert a[0].keys() == b[0].keys() and a[1].keys() == b[1].keys()
    for one, other in zip(a, b, strict=True):
        assert all(torch.equal(one[k], other[k]) for k in one)


class Poisoned:
    """The trainer's objective with a NaN loss ("loss"), a finite loss whose gradient is infinite
    ("grad") or a gradient norm far above skip_grad_norm ("norm")."""

    def __init__(self, trainer, kind):
        self.objective, self.kind, self.model = trainer.plan.objective, kind, trainer.plan.model

    def __call__(self, model, x, step):
        out = self.objective(model, x, step)
        if self.kind == "grad":   # a hook on one weight, removed once it has fired
            handle = []

            def infinite(grad):
                handle.pop().remove()
                return torch.full_like(grad, math.inf)

            handle.append(next(self.model.parameters()).register_hook(infinite))
        return replace(out, loss=out.loss * {"loss": math.nan, "grad": 1.0, "norm": 1e12}[self.kind])


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("kind", ["loss", "grad", "norm"])
def test_a_skipped_update_leaves_parameters_and_optimizer_state_untouched(tmp_path, fused, kind):
    trainer = _trainer(tmp_path, skip_grad_norm=1e6)
    if not fused:
        trainer.optimizers[0] = torch.optim.Adam(trainer.params[0], lr=trainer.plan.config.lr, foreach=False)
    if fused and not getattr(trainer.optimizers[0], "_step_supports_amp_scaling", False):
        pytest.skip("this torch has no fused Adam for the CPU")
    batches = _batches(trainer, 4)
    for x in batches[:2]:
        trainer.step(x)
        trainer.counters["step"] += 1
    before = _state(trainer)
    good, trainer.plan.objective = trainer.plan.objective, Poisoned(trainer, kind)
    figures = trainer.step(batches[2])
    trainer.plan.objective = good
    assert torch.equal(figures, torch.zeros(4))
    _assert_same_state(before, _state(trainer))
    assert not hasattr(trainer.optimizers[0], "found_inf")
    trainer.count_skips()
    assert trainer.counters["skipped"] == 1 and trainer.counters["consecutive_skips"] == 1
    trainer.step(batches[3])          # the next good update is taken and resets the run of skips
    trainer.count_skips()
    assert trainer.counters["consecutive_skips"] == 0
    assert not all(torch.equal(a, b) for a, b in zip(before[0].values(), _state(trainer)[0].values(),
                                                       strict=True))


def test_updates_without_skips_are_bit_identical_to_the_host_guard(tmp_path):
    new, old = _trainer(tmp_path, "new"), _trainer(tmp_path, "old")
    for i, x in enumerate(_batches(new, 12)):
        torch.manual_seed(i)
        figures = new.step(x)
        torch.manual_seed(i)
        reference = _host_guard_step(old, x)
        assert torch.equal(figures[:3], reference) and figures[3] == 1
        new.counters["step"] += 1
        old.counters["step"] += 1
    _assert_same_state(_state(new), _state(old))
    new.count_skips()
    assert new.counters["skipped"] == 0


def test_a_run_of_skips_stops_training_at_its_step_even_if_it_ended_before_the_count(tmp_path):
    """Five skips in a row (steps 3-7, max_consecutive_skips 4) followed by good updates, all before
    the counters are read: the count still finds the run and names the step that exceeded it."""
    trainer = _trainer(tmp_path, max_consecutive_skips=4)
    good, bad = trainer.plan.objective, Poisoned(trainer, "loss")
    for step, x in enumerate(_batches(trainer, 10)):
        trainer.plan.objective = bad if 3 <= step <= 7 else good
        trainer.step(x)
        trainer.counters["step"] += 1
    with pytest.raises(TrainingDiverged, match="5 consecutive updates skipped at step 7"):
        trainer.count_skips()


def test_skips_are_counted_within_a_few_steps_without_reading_the_counters(tmp_path):
    trainer = _trainer(tmp_path, max_consecutive_skips=1000)
    trainer.plan.objective = Poisoned(trainer, "loss")
    for x in _batches(trainer, 70):
        trainer.step(x)
        trainer.counters["step"] += 1
    assert len(trainer.pending_skips) < 64 and trainer.counters["skipped"] == 70 - len(trainer.pending_skips)
